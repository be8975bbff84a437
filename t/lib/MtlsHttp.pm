package MtlsHttp;

# A small HTTP/1.1 server on loopback for the tests of URL sources
# (t/revocation_url.t, t/revocation_cdp.t), one process per connection:
# /NAME serves $dir/NAME with an ETag (304 to a matching If-None-Match),
# a path with "/../" is not found, and /dyn does what $dir/mode says (500,
# an HTML page, a truncated or huge body, a redirect loop, an empty reply,
# a reply after 5 s, else $dir/dyn.crl).  Each request is logged to
# $dir/requests.log as "PATH inm=VALUE".
#
#   my $pid = MtlsHttp::start(port(8081), "$d/www");
#   MtlsHttp::stop($pid);

use warnings;
use strict;

use IO::Socket::INET;
use POSIX ();

use Mtls;

# the servers started; one still running when the test dies would hold
# prove's pipe open
my %servers;
my $main = $$;
END { kill('TERM', keys %servers) if $$ == $main }

sub start {
	my ($port, $dir) = @_;

	my $server = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$port",
		Listen => 64, ReuseAddr => 1) or die "listen: $!\n";

	my $pid = fork() // die "fork: $!\n";
	if ($pid) {
		close($server);
		$servers{$pid} = 1;
		return $pid;
	}

	$SIG{CHLD} = 'IGNORE';
	while (1) {
		my $c = $server->accept() or next;
		my $child = fork();
		if (defined $child && $child == 0) {
			close($server);
			serve($c, $dir);
			POSIX::_exit(0);
		}
		close($c);
	}
}

sub stop {
	my ($pid) = @_;
	kill('TERM', $pid);
	waitpid($pid, 0);
	delete $servers{$pid};
}

sub serve {
	my ($c, $dir) = @_;

	my $req = '';
	while ($req !~ /\x0d\x0a\x0d\x0a/) {
		$c->sysread(my $buf, 4096) or return;
		$req .= $buf;
	}
	my ($path) = $req =~ m{^GET (\S+)} or return;
	my ($inm) = $req =~ /^If-None-Match:\s*(.*?)\x0d$/mi;

	open(my $log, '>>', "$dir/requests.log");
	print $log "$path inm=" . ($inm // '') . "\n";
	close($log);

	my $reply = sub {
		my ($head, $body, %o) = @_;
		my $len = $o{length} // length($body);
		$c->syswrite("HTTP/1.1 $head\x0d\x0aContent-Length: $len\x0d\x0a"
			. ($o{headers} // '') . "Connection: close\x0d\x0a\x0d\x0a"
			. $body);
	};

	my $file = $path;
	if ($path eq '/dyn') {
		my $mode = Mtls::slurp("$dir/mode");
		if ($mode eq '500') { return $reply->('500 Oops', 'oops') }
		if ($mode eq 'html') {
			return $reply->('200 OK', '<html><body>Sign in</body></html>',
				headers => "Content-Type: text/html\x0d\x0a");
		}
		if ($mode eq 'truncated') {
			return $reply->('200 OK', 'x' x 100, length => 5000);
		}
		if ($mode eq 'huge') { return $reply->('200 OK', 'x' x 200000) }
		if ($mode eq 'loop') {
			return $reply->('302 Found', '',
				headers => "Location: /dyn\x0d\x0a");
		}
		if ($mode eq 'empty') { return }
		if ($mode eq 'slow') { sleep(5); return }
		$file = '/dyn.crl';
	}

	my $body = $file =~ m{/\.\./} ? undef : eval { Mtls::slurp("$dir$file") };
	return $reply->('404 Not Found', '') unless defined $body;

	my @st = stat("$dir$file");
	my $etag = sprintf('"%x-%x-%x"', $st[1], $st[7], $st[9]);
	return $reply->('304 Not Modified', '',
		headers => "ETag: $etag\x0d\x0a")
		if defined $inm && $inm eq $etag;
	$reply->('200 OK', $body, headers => "ETag: $etag\x0d\x0a");
}

1;
