#!/usr/bin/perl

# Tests for the mtls module: OCSP for client certificates (mtls_ocsp,
# mtls_ocsp_responder, mtls_ocsp_fail, mtls_ocsp_timeout, mtls_ocsp_cache).
# "openssl ocsp" is the real responder on loopback; a small forking HTTP
# server in this file plays the broken ones: slow, down, 500, an HTML page,
# a truncated or huge body, and responses made by "openssl ocsp" offline
# that must not be believed (signed by the wrong key, expired (made under
# faketime), for another certificate) or that say "unknown".  With one
# worker, a request that waits for an answer must not hold up another
# connection; a certificate revoked at the CA is denied on open keep-alive
# and HTTP/2 connections and on resumed sessions within the refresh
# interval.

###############################################################################

use warnings;
use strict;

use Test::More;

BEGIN { use FindBin; chdir($FindBin::Bin); }

use Test::Nginx;
use Mtls;
use MtlsOcsp;

use IO::Socket::INET;
use POSIX ();
use Time::HiRes ();

###############################################################################

select STDERR; $| = 1;
select STDOUT; $| = 1;

my $t = Test::Nginx->new()->has(qw/http http_ssl http_v2/)
	->has_daemon('openssl')->has_daemon('faketime')->plan(62);

my $d = $t->testdir();
my $fake = port(8082);
my $real = port(8081);

# one location per broken responder, hard and soft; each is asked about a
# certificate of its own, since answers are cached per certificate

my @broken = qw/500 html truncated huge wrongkey expired other unknown slow/;
my $locations = '';
for my $case (@broken, 'down') {
	my $url = $case eq 'down'
		? 'http://127.0.0.1:%%PORT_8083%%/'
		: "http://127.0.0.1:%%PORT_8082%%/$case";
	$locations .= <<"EOF";
        location /$case {
            mtls_ocsp_responder $url;
            try_files /ok =404;
        }
        location /$case-soft {
            mtls_ocsp_responder $url@{[ $case eq 'down' ? '' : '-soft' ]};
            mtls_ocsp_fail soft;
            try_files /ok =404;
        }
EOF
}

$t->write_file_expand('nginx.conf', <<"EOF");

%%TEST_GLOBALS%%

daemon off;
worker_processes 1;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    mtls_ocsp_cache refresh=1s errors=3s;
    # worker 0 writes the loader's log lines this often
    mtls_reload_interval 200ms;

    add_header X-Decision \$mtls_decision always;
    add_header X-Reason \$mtls_reason always;
    add_header X-Reused \$ssl_session_reused always;

    server {
        listen       127.0.0.1:%%PORT_8443%% ssl http2;
        server_name  localhost;

        ssl_certificate localhost.crt;
        ssl_certificate_key localhost.key;
        ssl_client_certificate ca.crt;
        ssl_verify_client on;
        ssl_session_cache shared:SSL:1m;

        mtls_ocsp leaf;
        mtls_ocsp_timeout 1s;

        # the responder of each certificate's AIA: the real one
        location / {
            try_files /ok =404;
        }

        # answered in the rewrite phase, before the access phase: decided
        # in the header filter, which cannot wait for a look-up
        location /early {
            mtls_ocsp_responder http://127.0.0.1:%%PORT_8082%%/slow/early;
            return 200 "early";
        }

        location /plain {
            mtls_ocsp off;
            try_files /ok =404;
        }

        location /patient {
            mtls_ocsp_responder http://127.0.0.1:%%PORT_8082%%/slow/patient;
            mtls_ocsp_timeout 5s;
            try_files /ok =404;
        }

$locations
    }

    server {
        listen       127.0.0.1:%%PORT_8080%%;
        server_name  localhost;

        location /status {
            mtls_status;
        }
    }
}

EOF

$t->write_file('ok', 'ok');

my $pki = Mtls::PKI->new($d);
$pki->ca('ca', subj => '/CN=OCSP Test CA');
$pki->ca('impostor', subj => '/CN=OCSP Test CA');
$pki->leaf('localhost', ca => 'ca', eku => 'serverAuth');

my $aia = "http://127.0.0.1:$real/";
my @clients = ('alice', 'bob', 'revoked', 'live', 'patient', 'c_gone',
	'c_early',
	map { ("c_$_", "c_$_-soft") } @broken, 'down');
$pki->leaf($_, ca => 'ca', ocsp => $aia) for @clients;

# the CA's database, as "openssl ocsp -index" reads it; c_unknown and
# c_unknown-soft are not in it

sub write_index {
	my (%revoked) = @_;

	my @names = grep { !/^c_unknown/ } @clients;
	MtlsOcsp::write_index("$d/index.txt", (map { "$d/$_.crt" } @names),
		revoked => [ map { "$d/$_.crt" } grep { $revoked{$_} } @names ]);
}

write_index(revoked => 1);

# responses made offline, for the broken responder to serve

sub canned {
	my ($name, $for, %o) = @_;

	Mtls::run_cmd('openssl', 'ocsp', '-issuer', "$d/ca.crt",
		'-cert', "$d/$for.crt", '-no_nonce', '-reqout', "$d/$name.req");
	my $signer = $o{signer} // 'ca';
	my @cmd = ('openssl', 'ocsp', '-index', "$d/index.txt",
		'-CA', "$d/ca.crt", '-rsigner', "$d/$signer.crt",
		'-rkey', "$d/$signer.key", '-reqin', "$d/$name.req",
		'-respout', "$d/$name.resp", $o{ndays} ? ('-ndays', 1) : ('-nmin', 60));
	unshift @cmd, 'faketime', $o{faketime} if $o{faketime};
	Mtls::run_cmd(@cmd);
}

for my $soft ('', '-soft') {
	canned("wrongkey$soft", "c_wrongkey$soft", signer => 'impostor');
	canned("expired$soft", "c_expired$soft", faketime => '2 days ago',
		ndays => 1);
	canned("other$soft", 'bob');
	canned("unknown$soft", "c_unknown$soft");
	canned("truncated$soft", "c_truncated$soft");
}

like(Mtls::run_cmd('openssl', 'ocsp', '-respin', "$d/expired.resp",
	'-resp_text', '-noverify'), qr/Next Update: .* \d{4} GMT/,
	'an expired response was made');

$t->run_daemon(\&broken_responder, $fake, $real, $d);
$t->waitforsocket("127.0.0.1:$fake") or die "no broken responder\n";

my $responder;
start_responder();

$t->run();

###############################################################################

sub get {
	my ($uri, $cert) = @_;
	return Mtls::outcome(https_get(port(8443), $uri, "$d/$cert"));
}

# runs a request in a child process; returns a sub that waits for it and
# returns [ seconds, outcome ]

sub in_background {
	my ($uri, $cert) = @_;

	my $file = "$d/bg." . int(rand(1e9));
	my $pid = fork() // die "fork: $!\n";
	if ($pid == 0) {
		my $start = Time::HiRes::time();
		my $r = get($uri, $cert);
		Mtls::spew($file, sprintf("%.3f %s", Time::HiRes::time() - $start,
			$r));
		POSIX::_exit(0);
	}

	return sub {
		waitpid($pid, 0);
		my ($secs, $outcome) = split / /, Mtls::slurp($file), 2;
		return [ $secs, $outcome ];
	};
}

# the real responder and its answers

is(get('/', 'alice'), '200 allow', 'good, from the AIA responder');
is(get('/', 'alice'), '200 allow', 'good, cached');
is(get('/', 'revoked'), '403 deny revoked', 'revoked');
is(get('/plain', 'revoked'), '200 off', 'mtls_ocsp off');

# answers that are not believed, and unavailable responders

for my $case (qw/500 html truncated huge wrongkey expired other down/) {
	is(get("/$case", "c_$case"), '403 deny ocsp_unavailable', "$case: hard");
	is(get("/$case-soft", "c_$case-soft"), '200 allow', "$case: soft");
}

is(get('/unknown', 'c_unknown'), '403 deny ocsp_unknown', 'unknown: hard');
is(get('/unknown-soft', 'c_unknown-soft'), '403 deny ocsp_unknown',
	'unknown: soft denies too');

Mtls::wait_log($t, 0, qr/look-up of "CN=c_other-soft"/);
my $log = Mtls::slurp("$d/error.log");
like($log, qr/c_500".*failed: unexpected HTTP status 500/, 'log: 500');
like($log, qr/c_html".*not an OCSP response/, 'log: HTML');
like($log, qr/c_huge".*larger than/, 'log: huge');
like($log, qr/c_wrongkey".*not signed by the issuer/, 'log: wrong key');
like($log, qr/c_expired".*not current/, 'log: expired');
like($log, qr/c_other".*does not answer for this certificate/,
	'log: another certificate');
like($log, qr/OCSP status of "CN=c_down-soft" unavailable, passed/,
	'log: soft pass');

# a failure is cached: the dead responder is not asked again meanwhile

my ($secs, $r) = Mtls::timed(sub {
	join ', ', map { get('/down', 'c_down') } 1 .. 5 });
is($r, join(', ', ('403 deny ocsp_unavailable') x 5), 'down: cached failure');
Mtls::wait_log($t, 0, qr/look-up of "CN=c_down" at/);
Time::HiRes::sleep(0.5);
my @asked = Mtls::slurp("$d/error.log") =~ /look-up of "CN=c_down" at/g;
# once for the first request; at most once more, if the loader tried
# again after "errors" meanwhile
cmp_ok(scalar @asked, '<=', 2, 'down: not asked for each request');

($secs, $r) = Mtls::timed(sub { get('/early', 'c_early') });
is($r, '403 deny ocsp_unavailable', 'early response: no answer, denied');
cmp_ok($secs, '<', 0.9, 'early response: without waiting');

# a slow responder: the request waits (at most mtls_ocsp_timeout) without
# blocking the worker, whose other connections are served meanwhile

my $slow = in_background('/slow', 'c_slow');
Time::HiRes::sleep(0.3);
($secs, $r) = Mtls::timed(sub { get('/', 'alice') });
is($r, '200 allow', 'slow: another connection is served');
cmp_ok($secs, '<', 0.6, 'slow: at once');
($secs, $r) = Mtls::timed(sub { get('/plain', 'bob') });
cmp_ok($secs, '<', 0.5, 'slow: a location without OCSP at once');
my $res = $slow->();
is($res->[1], '403 deny ocsp_unavailable', 'slow: denied at the timeout');
cmp_ok($res->[0], '>=', 0.9, 'slow: after the timeout');
cmp_ok($res->[0], '<', 2.5, 'slow: not after the responder');

# a client that goes away while its request waits: the request ends at
# once, and its timer with it

{
	my $s = Mtls::connect_tls(port => port(8443), cert => "$d/c_gone");
	$s->print("GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n");
	Time::HiRes::sleep(0.3);
	$s->close();
}
like(Mtls::wait_log($t, 0, qr/client prematurely closed connection.*GET \/slow /, 3),
	qr/closed/, 'gone: the waiting request ends');
is(get('/', 'alice'), '200 allow', 'gone: served after');

my $soft = in_background('/slow-soft', 'c_slow-soft');
$res = $soft->();
is($res->[1], '200 allow', 'slow: soft passes at the timeout');

# a responder that answers in 2 s, within a 5 s timeout

my $patient = in_background('/patient', 'patient');
Time::HiRes::sleep(0.3);
my $h2 = Mtls::H2->new(port => port(8443), cert => "$d/alice");
($secs, $r) = Mtls::timed(sub { $h2->get('/') });
is($r->{status}, 200, 'waiting: HTTP/2 request on another connection');
cmp_ok($secs, '<', 0.5, 'waiting: at once');
$h2->close();
$res = $patient->();
is($res->[1], '200 allow', 'waiting: allowed once the answer came');
cmp_ok($res->[0], '>=', 1.8, 'waiting: after the responder answered');

# status

my $status = Mtls::mtls_status(port(8080));
my $ocsp = $status->{ocsp};
cmp_ok($ocsp->{entries}, '>=', 20, 'status: entries');
cmp_ok($ocsp->{hits}, '>=', 2, 'status: hits');
cmp_ok($ocsp->{misses}, '>=', 20, 'status: misses');
cmp_ok($ocsp->{responder_errors}, '>=', 14, 'status: responder errors');
cmp_ok($ocsp->{soft_fail_passes}, '>=', 8, 'status: soft-fail passes');
cmp_ok($ocsp->{answers}{revoked}, '>=', 1, 'status: revoked answers');
cmp_ok($ocsp->{answers}{unknown}, '>=', 2, 'status: unknown answers');
like(Mtls::mtls_status(port(8080), uri => '/status?format=prometheus',
	raw => 1), qr/^mtls_ocsp_answers_total\{status="good"\} [1-9]/m,
	'status: prometheus');

# revoked at the CA while a client holds a keep-alive connection, an HTTP/2
# connection, and a session to resume

my $ka = Mtls::KeepAlive->new(port => port(8443), cert => "$d/live");
$h2 = Mtls::H2->new(port => port(8443), cert => "$d/live");
my $ctx = Mtls::client_ctx("$d/live");

is($ka->get('/')->{headers}{'x-decision'}, 'allow', 'live: keep-alive');
is($h2->get('/')->{headers}{'x-decision'}, 'allow', 'live: HTTP/2');
like(Mtls::resumed_get(port(8443), $ctx, '/'), qr/X-Decision: allow/,
	'live: new session');

stop_responder();
write_index(revoked => 1, live => 1);
start_responder();
my $start = Time::HiRes::time();

my $denied = Mtls::wait_for(sub {
	($ka->get('/')->{headers}{'x-reason'} // '') eq 'revoked'
}, 8);
my $took = Time::HiRes::time() - $start;
ok($denied, 'live: keep-alive denied');
# A refresh is due in whole seconds (refresh=1s); one that lands while the
# responder restarts fails and is asked again after errors=3s.
cmp_ok($took, '<', 5, 'live: within the refresh interval and a look-up');
diag(sprintf('revocation seen on the keep-alive connection after %.2f s', $took));
is($h2->get('/')->{headers}{'x-reason'}, 'revoked', 'live: HTTP/2 denied');
like(Mtls::resumed_get(port(8443), $ctx, '/'),
	qr/X-Reason: revoked.*X-Reused: r|X-Reused: r.*X-Reason: revoked/s,
	'live: resumed session denied');
$ka->close();
$h2->close();

stop_responder();

###############################################################################

sub start_responder {
	my $mark = -s "$d/responder.log" // 0;
	$responder = fork() // die "fork: $!\n";
	if ($responder == 0) {
		open STDOUT, '>>', "$d/responder.log";
		open STDERR, '>&', \*STDOUT;
		{ exec 'openssl', 'ocsp', '-index', "$d/index.txt", '-port', $real,
			'-rsigner', "$d/ca.crt", '-rkey', "$d/ca.key",
			'-CA', "$d/ca.crt", '-nmin', 60, '-ignore_err'; }
		POSIX::_exit(1);
	}
	# Not with a test connection: "openssl ocsp" waits for ever for the
	# request of a connection that closed without one.
	Mtls::wait_for(sub {
		my $log = -e "$d/responder.log" ? Mtls::slurp("$d/responder.log") : '';
		substr($log, $mark) =~ /waiting for OCSP client connections/;
	}) or die "no OCSP responder\n";
}

sub stop_responder {
	return unless $responder;
	kill 'TERM', $responder;
	waitpid($responder, 0);
	undef $responder;
}

END { stop_responder() if $responder; }

# the broken responder: one process per connection, the path says how to
# fail; "slow" answers after 3 s with the real responder's answer

sub broken_responder {
	my ($port, $real, $dir) = @_;

	my $server = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$port",
		Listen => 64, ReuseAddr => 1) or die "listen: $!\n";
	$SIG{CHLD} = 'IGNORE';

	while (1) {
		my $c = $server->accept() or next;
		my $pid = fork();
		if (defined $pid && $pid == 0) {
			eval { serve($c, $real, $dir) };
			POSIX::_exit(0);
		}
		close $c;
	}
}

sub serve {
	my ($c, $real, $dir) = @_;

	my $head = '';
	$head .= $_ while defined($_ = <$c>) && $_ ne "\r\n";
	my ($path) = $head =~ m!^POST (/\S*)!;
	my ($len) = $head =~ /^Content-Length:\s*(\d+)/mi;
	my $body = '';
	read($c, $body, $len // 0);
	my ($case) = ($path // '') =~ m!^/(\w+)!;
	$case //= '';
	my $soft = ($path // '') =~ /-soft/ ? '-soft' : '';

	my $reply = sub {
		my ($status, $type, $content, $length) = @_;
		print $c "HTTP/1.0 $status\r\nContent-Type: $type\r\n"
			. 'Content-Length: ' . ($length // length $content)
			. "\r\n\r\n" . $content;
	};

	if ($case eq 'slow') {
		sleep($path =~ /patient/ ? 2 : 3);
		my $answer = MtlsOcsp::ask($real, $body) // return;
		print $c $answer;

	} elsif ($case eq '500') {
		$reply->('500 Internal Server Error', 'text/plain', 'error');

	} elsif ($case eq 'html') {
		$reply->('200 OK', 'text/html', '<html><body>busy</body></html>');

	} elsif ($case eq 'truncated') {
		my $resp = Mtls::slurp("$dir/truncated$soft.resp");
		$reply->('200 OK', 'application/ocsp-response',
			substr($resp, 0, 100), length $resp);

	} elsif ($case eq 'huge') {
		print $c "HTTP/1.0 200 OK\r\nContent-Type: application/ocsp-response"
			. "\r\n\r\n";
		print $c "\x30" x 65536 for 1 .. 16;

	} else {
		$reply->('200 OK', 'application/ocsp-response',
			Mtls::slurp("$dir/$case$soft.resp"));
	}

	close $c;
}

###############################################################################
