package MtlsOcsp;

# Helpers for the OCSP tests (t/ocsp*.t) and the benchmark: a CA's index
# as "openssl ocsp -index" reads it; "openssl ocsp" responders on
# loopback, each with its own log, so that a test can tell which responder
# was asked; a request sent to a responder; and a proxy that passes each
# request on to a responder some time after it came.
#
#   MtlsOcsp::write_index("$d/int.idx", "$d/alice.crt", "$d/bob.crt",
#       revoked => [ "$d/bob.crt" ]);
#   my $r = MtlsOcsp::Responder->new(dir => $d, name => 'int',
#       port => port(8084), index => 'int.idx', ca => 'int', signer => 'int');
#   $r->start();  $r->requests();  $r->stop();
#   my $answer = MtlsOcsp::ask(port(8081), $der);
#   $t->run_daemon(\&MtlsOcsp::delaying_proxy, port(8082), port(8081), 1);

use warnings;
use strict;

use IO::Select;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes ();

use Mtls;

# writes the index of a CA's certificates (paths): valid, or revoked if
# listed in "revoked"

sub write_index {
	my ($file, @args) = @_;

	my %o;
	my @certs;
	while (@args) {
		my $a = shift @args;
		if (!ref $a && $a eq 'revoked') {
			$o{revoked} = shift @args;
			next;
		}
		push @certs, $a;
	}
	my %revoked = map { $_ => 1 } @{$o{revoked} // []};

	my $index = '';
	for my $crt (@certs) {
		my $serial = Mtls::serial_hex($crt);
		$serial = "0$serial" if length($serial) % 2;
		my ($name) = $crt =~ m!([^/]+)\.crt$!;
		$index .= $revoked{$crt}
			? "R\t301231000000Z\t251201000000Z\t$serial\tunknown\t/CN=$name\n"
			: "V\t301231000000Z\t\t$serial\tunknown\t/CN=$name\n";
	}
	Mtls::write_atomic($file, $index);
}

# writes the OCSP request $der (DER) to the responder's socket $s

sub post {
	my ($s, $der) = @_;
	print $s "POST / HTTP/1.0\r\nContent-Type: application/ocsp-request\r\n"
		. 'Content-Length: ' . length($der) . "\r\n\r\n$der";
}

# sends the OCSP request $der to the responder on loopback port $port;
# returns its whole answer (the HTTP response), undef if it cannot connect

sub ask {
	my ($port, $der) = @_;
	my $s = IO::Socket::INET->new("127.0.0.1:$port") or return undef;
	post($s, $der);
	local $/;
	return scalar <$s>;
}

# a proxy on loopback port $port that passes each OCSP request on to the
# responder on port $to $delay seconds after it came, and its answer back;
# runs for ever, in one process that does not fork (so that it costs the
# CPU it shares with a benchmark's load generator as little as it can).
# A connection that closes before a whole request (waitforsocket()'s) is
# forgotten: "openssl ocsp" would wait for ever for its body.

sub delaying_proxy {
	my ($port, $to, $delay) = @_;
	my $server = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$port",
		Listen => 64, ReuseAddr => 1) or die "listen: $!\n";
	my $select = IO::Select->new($server);
	# a client gone before its answer must not end the proxy
	$SIG{PIPE} = 'IGNORE';
	my %c;    # fileno => { sock, in, body, due }
	while (1) {
		my $now = Time::HiRes::time();
		my ($next) = sort { $a <=> $b } grep { defined }
			map { $_->{due} } values %c;
		my $wait = defined $next ? ($next > $now ? $next - $now : 0) : undef;
		for my $s ($select->can_read($wait)) {
			if ($s == $server) {
				my $new = $server->accept() or next;
				$c{fileno $new} = { sock => $new, in => '' };
				$select->add($new);
				next;
			}
			my $c = $c{fileno $s};
			if (!sysread($s, $c->{in}, 65536, length $c->{in})) {
				$select->remove($s);
				delete $c{fileno $s};
				close $s;
				next;
			}
			my ($head, $body) = split /\r\n\r\n/, $c->{in}, 2;
			next unless defined $body;
			my ($len) = $head =~ /^Content-Length:\s*(\d+)/mi;
			next if length($body) < ($len // 0);
			@$c{qw/body due/} = ($body, Time::HiRes::time() + $delay);
			$select->remove($s);
		}
		$now = Time::HiRes::time();
		for my $fd (grep { ($c{$_}{due} // $now + 1) <= $now } keys %c) {
			my $c = delete $c{$fd};
			my $answer = ask($to, $c->{body});
			print { $c->{sock} } $answer if defined $answer;
			close $c->{sock};
		}
	}
}

package MtlsOcsp::Responder;

# one "openssl ocsp" responder: the certificates of CA "ca" (a name in the
# directory, as Mtls::PKI makes them), answers signed by "signer" (the CA
# itself, or a certificate it delegated), the index file "index"; its
# output, a line for each request, goes to "$name.log"

sub new {
	my ($class, %o) = @_;
	return bless { %o, pid => undef, owner => $$ }, $class;
}

sub log_file {
	my ($self) = @_;
	return "$self->{dir}/$self->{name}.log";
}

sub start {
	my ($self) = @_;

	my $d = $self->{dir};
	my $log = $self->log_file();
	my $mark = -s $log // 0;

	my $pid = fork() // die "fork: $!\n";
	if ($pid == 0) {
		open STDOUT, '>>', $log;
		open STDERR, '>&', \*STDOUT;
		{ exec 'openssl', 'ocsp', '-index', "$d/$self->{index}",
			'-port', $self->{port},
			'-rsigner', "$d/$self->{signer}.crt",
			'-rkey', "$d/$self->{signer}.key",
			'-CA', "$d/$self->{ca}.crt", '-nmin', 60, '-ignore_err'; }
		POSIX::_exit(1);
	}
	$self->{pid} = $pid;
	$self->{owner} = $$;

	# Not with a test connection: "openssl ocsp" waits for ever for the
	# request of a connection that closed without one.
	Mtls::wait_for(sub {
		my $text = -e $log ? Mtls::slurp($log) : '';
		substr($text, $mark) =~ /waiting for OCSP client connections/;
	}) or die "no OCSP responder $self->{name}\n";

	return $self;
}

sub stop {
	my ($self) = @_;
	# not from a process the test forked
	return unless $self->{pid} && $self->{owner} == $$;
	kill 'TERM', $self->{pid};
	waitpid($self->{pid}, 0);
	undef $self->{pid};
}

# how many requests it received since it was made (its log has a line
# for each)

sub requests {
	my ($self) = @_;
	my $log = -e $self->log_file() ? Mtls::slurp($self->log_file()) : '';
	my @n = $log =~ /received request/gi;
	return scalar @n;
}

sub DESTROY {
	my ($self) = @_;
	$self->stop();
}

1;
