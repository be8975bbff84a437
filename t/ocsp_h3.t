#!/usr/bin/perl

# Tests for the mtls module: OCSP over HTTP/3.  A request on a QUIC
# connection whose certificate has no cached answer waits for the loader's
# look-up (at "openssl ocsp" behind a proxy that answers after a second)
# and is resumed: allowed when good, denied when revoked, while other QUIC
# connections are served.  A certificate revoked at the responder is denied
# on the next request of a QUIC connection opened before, and on a QUIC
# connection that resumes a TLS session of before (a session ticket),
# within the refresh interval.  Where nginx was built without HTTP/3, checks
# that it refuses "quic" with OCSP configured.

###############################################################################

use warnings;
use strict;

use Test::More;

BEGIN { use FindBin; chdir($FindBin::Bin); }

use Test::Nginx;
use Mtls;
use MtlsOcsp;

use POSIX ();
use Time::HiRes ();

###############################################################################

select STDERR; $| = 1;
select STDOUT; $| = 1;

my $t = Test::Nginx->new()->has(qw/http http_ssl/)->has_daemon('openssl');

unless ($t->has_module('http_v3')) {
	$t->plan(1);

	diag('nginx was built without --with-http_v3_module: no OCSP over '
		. 'HTTP/3 and no resumed QUIC session to test; checking that it '
		. 'refuses "listen ... quic"');

	like(Mtls::nginx_t($t, <<'EOF'), qr/\[emerg\] invalid parameter "quic" in /,

%%TEST_GLOBALS%%

events {
}

http {
    server {
        listen 127.0.0.1:%%PORT_8943_UDP%% quic;
        mtls_ocsp leaf;
        mtls_ocsp_responder http://127.0.0.1:%%PORT_8081%%/;
    }
}
EOF
		'no HTTP/3: quic listener refused');

	$t->write_file('error.log', '');
	exit;
}

# nginx has HTTP/3: a missing client is a failure, not a reason to skip

if (my $missing = Mtls::H3::missing()) {
	$t->plan(1);
	fail("nginx has HTTP/3, the test client needs $missing");
	$t->write_file('error.log', '');
	exit;
}

$t->plan(27);

my $d = $t->testdir();
my $real = port(8081);
my $slow = port(8082);

$t->write_file_expand('nginx.conf', <<"EOF");

%%TEST_GLOBALS%%

daemon off;
worker_processes 1;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    mtls_ocsp_cache refresh=1s errors=1s;
    mtls_reload_interval 200ms;

    add_header X-Decision \$mtls_decision always;
    add_header X-Reason \$mtls_reason always;
    add_header X-Proto \$server_protocol always;
    add_header X-Reused \$ssl_session_reused always;

    server {
        listen       127.0.0.1:%%PORT_8443%% ssl;
        listen       127.0.0.1:%%PORT_8943_UDP%% quic;
        server_name  localhost;

        ssl_certificate localhost.crt;
        ssl_certificate_key localhost.key;
        ssl_client_certificate ca.crt;
        ssl_verify_client on;

        mtls_ocsp leaf;
        mtls_ocsp_timeout 4s;

        # the responder of the certificates' AIA
        location / {
            try_files /ok =404;
        }

        # the same answers, a second later
        location /slow {
            mtls_ocsp_responder http://127.0.0.1:%%PORT_8082%%/;
            try_files /ok =404;
        }

        location /down {
            mtls_ocsp_responder http://127.0.0.1:%%PORT_8083%%/;
            try_files /ok =404;
        }

        location /plain {
            mtls_ocsp off;
            try_files /ok =404;
        }
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
$pki->ca('ca', subj => '/CN=OCSP H3 CA');
$pki->leaf('localhost', ca => 'ca', eku => 'serverAuth');

my @clients = qw/alice bob mallory carol dave hank gina/;
$pki->leaf($_, ca => 'ca', ocsp => "http://127.0.0.1:$real/") for @clients;

sub index_with {
	my (@revoked) = @_;
	MtlsOcsp::write_index("$d/ca.idx", (map { "$d/$_.crt" } @clients),
		revoked => [ map { "$d/$_.crt" } @revoked ]);
}

index_with('mallory');

my $responder = MtlsOcsp::Responder->new(dir => $d, name => 'responder',
	port => $real, index => 'ca.idx', ca => 'ca', signer => 'ca')->start();

$t->run_daemon(\&MtlsOcsp::delaying_proxy, $slow, $real, 1);
$t->waitforsocket("127.0.0.1:$slow") or die "no slow proxy\n";

$t->run();

###############################################################################

sub h3 {
	my ($cert, %o) = @_;
	return Mtls::H3->new(port => port(8943, udp => 1), cert => "$d/$cert",
		%o);
}

# one request to $uri on a new QUIC connection that resumes the session of
# the ticket $cert's connections saved; also the client's view of the
# handshake

sub resumed {
	my ($cert, $uri) = @_;

	my $h3 = h3($cert, ticket => "$d/$cert.ticket", resume => 1) or return;
	my $r = $h3->get($uri);
	my $info = $h3->info();
	$h3->close();

	return ($r, $info);
}

# one request on a new QUIC connection in a child process; returns a sub
# that waits for it and returns [ seconds, outcome, protocol ]

sub in_background {
	my ($uri, $cert) = @_;

	my $file = "$d/bg." . int(rand(1e9));
	my $pid = fork() // die "fork: $!\n";
	if ($pid == 0) {
		my $start = Time::HiRes::time();
		my $h3 = h3($cert);
		my $r = $h3 && $h3->get($uri);
		my $secs = Time::HiRes::time() - $start;
		$h3->close() if $h3;
		Mtls::spew($file, sprintf("%.3f %s\n%s", $secs,
			Mtls::outcome($r), Mtls::header($r, 'X-Proto') // ''));
		POSIX::_exit(0);
	}

	return sub {
		waitpid($pid, 0);
		my ($line, $proto) = split /\n/, Mtls::slurp($file), 2;
		my ($secs, $outcome) = split / /, $line, 2;
		return [ $secs, $outcome, $proto ];
	};
}

# a request with no cached answer waits for the look-up and is resumed;
# other QUIC connections are served meanwhile

my $bg = in_background('/slow', 'alice');
Time::HiRes::sleep(0.3);

my $bob = h3('bob');
my ($secs, $r) = Mtls::timed(sub { $bob && $bob->get('/plain') });
is(Mtls::outcome($r), '200 off', 'waiting: another QUIC connection served');
cmp_ok($secs, '<', 0.5, 'waiting: at once');

my $res = $bg->();
is($res->[1], '200 allow', 'waiting: good, allowed when the answer came');
is($res->[2], 'HTTP/3.0', 'waiting: over HTTP/3');
cmp_ok($res->[0], '>=', 0.9, 'waiting: after the responder answered');

my $mallory = h3('mallory');
($secs, $r) = Mtls::timed(sub { $mallory && $mallory->get('/slow') });
is(Mtls::outcome($r), '403 deny revoked', 'waiting: revoked, denied');
cmp_ok($secs, '>=', 0.9, 'waiting: revoked, after the responder answered');
is(Mtls::outcome($mallory && $mallory->get('/slow')), '403 deny revoked',
	'revoked: the next request, from the cache');
$mallory->close() if $mallory;

# the same connection goes on with cached answers

($secs, $r) = Mtls::timed(sub { $bob && $bob->get('/slow') });
is(Mtls::outcome($r), '200 allow', 'bob: waited, allowed');
($secs, $r) = Mtls::timed(sub { $bob && $bob->get('/slow') });
is(Mtls::outcome($r), '200 allow', 'bob: cached');
cmp_ok($secs, '<', 0.5, 'bob: cached, at once');

my $status = Mtls::mtls_status(port(8080));
cmp_ok($status && $status->{ocsp}{misses}, '>=', 3, 'status: misses');
cmp_ok($status && $status->{ocsp}{hits}, '>=', 1, 'status: hits');

# no answer to be had: denied at once from the failed look-up

my $hank = h3('hank');
is(Mtls::outcome($hank && $hank->get('/down')), '403 deny ocsp_unavailable',
	'responder down: denied');
$hank->close() if $hank;

# revoked at the responder while QUIC connections are open, and while a
# client holds a session ticket: denied on the next request of the
# connection, and on a connection that resumes the session, within the
# refresh interval

my $carol = h3('carol');
my $dave = h3('dave');
is(Mtls::outcome($carol && $carol->get('/')), '200 allow', 'live: carol');
is(Mtls::outcome($dave && $dave->get('/')), '200 allow', 'live: dave');

my $gina = h3('gina', ticket => "$d/gina.ticket");
is(Mtls::outcome($gina && $gina->get('/')), '200 allow', 'live: gina');
ok($gina && $gina->ticket(), 'live: gina has a session ticket');
$gina->close() if $gina;

my ($rr, $rinfo) = resumed('gina', '/');
is(Mtls::outcome($rr) . ' ' . (Mtls::header($rr, 'X-Reused') // ''),
	'200 allow r', 'live: gina resumed her session, allowed');

$responder->stop();
index_with('mallory', 'carol', 'gina');
$responder->start();
my $start = Time::HiRes::time();

my $denied = Mtls::wait_for(sub {
	Mtls::outcome($carol && $carol->get('/')) eq '403 deny revoked'
}, 8);
my $took = Time::HiRes::time() - $start;
ok($denied, 'live: carol denied on her open connection');
# a refresh is due in whole seconds; a look-up that fails while the
# responder restarts is tried again after "errors"
cmp_ok($took, '<', 4, 'live: within the refresh interval and a look-up');
diag(sprintf('revocation seen on the QUIC connection after %.2f s', $took));

my $info = $carol && $carol->info();
is($info && $info->{handshake} && !$info->{terminated} ? 1 : 0, 1,
	'live: the same connection');

$denied = Mtls::wait_for(sub {
	($rr, $rinfo) = resumed('gina', '/');
	Mtls::outcome($rr) eq '403 deny revoked'
}, 8);
$took = Time::HiRes::time() - $start;
ok($denied, 'live: gina denied on a resumed session');
cmp_ok($took, '<', 5,
	'live: resumed, within the refresh interval and a look-up');
diag(sprintf('revocation seen on a resumed QUIC session after %.2f s', $took));
is(join(' ', (map { Mtls::header($rr, $_) // '' } qw/X-Reused X-Proto/),
	$rinfo && $rinfo->{resumed} ? 'resumed' : 'full handshake'),
	'r HTTP/3.0 resumed', 'live: the session was resumed, over HTTP/3');
is(Mtls::outcome($dave && $dave->get('/')), '200 allow',
	'live: dave goes on');
is(Mtls::outcome($bob && $bob->get('/')), '200 allow',
	'live: bob goes on');

$_ && $_->close() for $bob, $carol, $dave;
$responder->stop();

###############################################################################
