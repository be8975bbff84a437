#!/usr/bin/perl

# Tests for the mtls module: "mtls_ocsp chain" against real responders, as
# a real PKI has them: a root CA, intermediates it issued, client
# certificates issued by the intermediates.  Each certificate's AIA names
# the responder of its issuer: "openssl ocsp" for the root's certificates
# (the intermediates), signed by the root or by a responder it delegated
# with id-kp-OCSPSigning, and one for each intermediate's certificates.
# Both levels good, the leaf revoked, the intermediate revoked (also on an
# open keep-alive connection and a resumed session), the intermediate's
# responder down (hard and soft), a responder the root did not delegate,
# and "mtls_ocsp leaf", which never asks the intermediate's responder.

###############################################################################

use warnings;
use strict;

use Test::More;

BEGIN { use FindBin; chdir($FindBin::Bin); }

use Test::Nginx;
use Mtls;
use MtlsOcsp;

use Time::HiRes ();

###############################################################################

select STDERR; $| = 1;
select STDOUT; $| = 1;

my $t = Test::Nginx->new()->has(qw/http http_ssl/)
	->has_daemon('openssl')->plan(36);

my $d = $t->testdir();

$t->write_file_expand('nginx.conf', <<'EOF');

%%TEST_GLOBALS%%

daemon off;
worker_processes 1;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    mtls_ocsp_cache refresh=1s errors=1s;
    # worker 0 writes the loader's log lines this often
    mtls_reload_interval 200ms;

    add_header X-Decision $mtls_decision always;
    add_header X-Reason $mtls_reason always;
    add_header X-Reused $ssl_session_reused always;

    server {
        listen       127.0.0.1:%%PORT_8443%% ssl;
        server_name  localhost;

        ssl_certificate localhost.crt;
        ssl_certificate_key localhost.key;
        ssl_client_certificate ca.crt;
        # the intermediates, for resumed sessions (OpenSSL keeps no chain)
        ssl_trusted_certificate ints.crt;
        ssl_verify_client on;
        ssl_verify_depth 2;
        ssl_session_cache shared:SSL:1m;

        mtls_ocsp chain;
        mtls_ocsp_timeout 3s;

        location / {
            try_files /ok =404;
        }

        location /soft {
            mtls_ocsp_fail soft;
            try_files /ok =404;
        }

        location /leaf {
            mtls_ocsp leaf;
            try_files /ok =404;
        }

        # asked about every certificate of the chain, instead of its AIA
        location /pinned {
            mtls_ocsp_responder http://127.0.0.1:%%PORT_8092%%/;
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

my $url = sub { 'http://127.0.0.1:' . port(shift) . '/' };

my $pki = Mtls::PKI->new($d);
$pki->ca('ca', subj => '/CN=Root CA', serial => '0x10');
$pki->leaf('localhost', ca => 'ca', eku => 'serverAuth', serial => '0x11');

# the root's responders: signed by the root, by a responder it delegated,
# and by a certificate it issued without id-kp-OCSPSigning

$pki->leaf('ocsp_del', ca => 'ca', eku => 'OCSPSigning', serial => '0x2201');
$pki->leaf('ocsp_x', ca => 'ca', serial => '0x2202');

# intermediates: the AIA names the root's responder to ask about them;
# int_down's is down (nothing listens on its port); int_leaf's is one of
# its own, to tell whether it was asked

my %int = (
	int => [ 8081, 8084, '0x2101' ],
	int_del => [ 8082, 8085, '0x2102' ],
	int_x => [ 8083, 8086, '0x2103' ],
	int_down => [ 8089, 8087, '0x2104' ],
	int_leaf => [ 8090, 8088, '0x2105' ],
	int_pin => [ 8091, 8092, '0x2106' ],
);

for my $name (sort keys %int) {
	$pki->ca($name, ca => 'ca', subj => "/CN=$name",
		serial => $int{$name}[2], ocsp => $url->($int{$name}[0]));
}

$t->write_file('ints.crt', join '', map { $t->read_file("$_.crt") }
	sort keys %int);

# clients; the AIA names their intermediate's responder

my %leaf = (
	alice => [ 'int', '0x3001' ],
	mallory => [ 'int', '0x3002' ],
	carol => [ 'int', '0x3003' ],
	dan => [ 'int_del', '0x3101' ],
	xavier => [ 'int_x', '0x3201' ],
	hank => [ 'int_down', '0x3301' ],
	sally => [ 'int_down', '0x3302' ],
	lea => [ 'int_leaf', '0x3401' ],
	pia => [ 'int_pin', '0x3501' ],
);

for my $name (sort keys %leaf) {
	my ($int, $serial) = @{$leaf{$name}};
	$pki->leaf($name, ca => $int, serial => $serial,
		ocsp => $url->($int{$int}[1]));
}

# the indexes: the root's (int_leaf revoked), and each intermediate's
# (mallory revoked)

sub root_index {
	my (@revoked) = @_;
	MtlsOcsp::write_index("$d/root.idx",
		(map { "$d/$_.crt" } sort keys %int),
		revoked => [ map { "$d/$_.crt" } @revoked ]);
}

root_index('int_leaf');

my %responder;

for my $int (sort keys %int) {
	my @certs = grep { $leaf{$_}[0] eq $int } sort keys %leaf;
	MtlsOcsp::write_index("$d/$int.idx", (map { "$d/$_.crt" } @certs),
		revoked => [ "$d/mallory.crt" ]);
	$responder{$int} = MtlsOcsp::Responder->new(dir => $d, name => $int,
		port => port($int{$int}[1]), index => "$int.idx", ca => $int,
		signer => $int)->start();
}

$responder{root} = MtlsOcsp::Responder->new(dir => $d, name => 'root',
	port => port(8081), index => 'root.idx', ca => 'ca', signer => 'ca')
	->start();
$responder{root_del} = MtlsOcsp::Responder->new(dir => $d,
	name => 'root_del', port => port(8082), index => 'root.idx', ca => 'ca',
	signer => 'ocsp_del')->start();
$responder{root_x} = MtlsOcsp::Responder->new(dir => $d, name => 'root_x',
	port => port(8083), index => 'root.idx', ca => 'ca', signer => 'ocsp_x')
	->start();
$responder{root_leaf} = MtlsOcsp::Responder->new(dir => $d,
	name => 'root_leaf', port => port(8090), index => 'root.idx', ca => 'ca',
	signer => 'ca')->start();
$responder{root_pin} = MtlsOcsp::Responder->new(dir => $d,
	name => 'root_pin', port => port(8091), index => 'root.idx', ca => 'ca',
	signer => 'ca')->start();

$t->run();

###############################################################################

sub get {
	my ($uri, $cert) = @_;
	return Mtls::outcome(Mtls::https_get(port(8443), $uri, "$d/$cert"));
}

# "misses HITS" of the status page since the last call

my $counted = [ 0, 0 ];

sub counted {
	my $ocsp = (Mtls::mtls_status(port(8080)) // {})->{ocsp} // {};
	my $now = [ $ocsp->{misses} // 0, $ocsp->{hits} // 0 ];
	my $delta = "misses @{[ $now->[0] - $counted->[0] ]}"
		. " hits @{[ $now->[1] - $counted->[1] ]}";
	$counted = $now;
	return $delta;
}

# both levels asked, both good; a request is one miss (it waited for both
# answers) or one hit (it found both)

counted();
is(get('/', 'alice'), '200 allow', 'good: leaf and intermediate');
is(counted(), 'misses 1 hits 0', 'status: waited for both answers, one miss');
is(get('/', 'alice'), '200 allow', 'good: cached');
is(counted(), 'misses 0 hits 1', 'status: both answers cached, one hit');
cmp_ok($responder{root}->requests(), '>=', 1,
	'good: the root\'s responder asked about the intermediate');
cmp_ok($responder{int}->requests(), '>=', 1,
	'good: the intermediate\'s responder asked about the leaf');

is(get('/', 'mallory'), '403 deny revoked', 'leaf revoked');
is(get('/soft', 'mallory'), '403 deny revoked', 'leaf revoked: soft too');

# a responder the root delegated with id-kp-OCSPSigning answers for the
# intermediate; one it issued without it is not believed

is(get('/', 'dan'), '200 allow', 'delegated responder');
cmp_ok($responder{root_del}->requests(), '>=', 1,
	'delegated responder: asked');
is(get('/', 'xavier'), '403 deny ocsp_unavailable',
	'responder not delegated: denied');
like(Mtls::wait_log($t, 0, qr/look-up of "CN=int_x"/),
	qr/not signed by the issuer or a responder it delegated/,
	'responder not delegated: logged');

# the intermediate's responder is down

is(get('/', 'hank'), '403 deny ocsp_unavailable',
	'intermediate\'s responder down: hard');
like(Mtls::wait_log($t, 0, qr/look-up of "CN=int_down"/),
	qr/at "http:\/\/127\.0\.0\.1:\d+\/" failed/,
	'intermediate\'s responder down: logged');
is(get('/soft', 'sally'), '200 allow',
	'intermediate\'s responder down: soft');
like(Mtls::wait_log($t, 0, qr/OCSP status of "CN=sally" unavailable/),
	qr/\[warn\].*passed by "mtls_ocsp_fail soft"/,
	'intermediate\'s responder down: soft, warning');
cmp_ok($responder{int_down}->requests(), '>=', 2,
	'intermediate\'s responder down: the leaf\'s asked');

# "mtls_ocsp leaf" asks about the client certificate only: lea's
# intermediate is revoked at the root's responder, which is never asked

is(get('/leaf', 'lea'), '200 allow', 'leaf mode: allowed');
cmp_ok($responder{int_leaf}->requests(), '>=', 1,
	'leaf mode: the leaf\'s responder asked');
Time::HiRes::sleep(1.5); # past a refresh
is($responder{root_leaf}->requests(), 0,
	'leaf mode: the intermediate\'s responder not asked');

is(get('/', 'lea'), '403 deny revoked', 'chain mode: intermediate revoked');
cmp_ok($responder{root_leaf}->requests(), '>=', 1,
	'chain mode: the intermediate\'s responder asked');
is(get('/leaf', 'lea'), '200 allow',
	'leaf mode: allowed, the intermediate\'s answer aside');

# mtls_ocsp_responder is asked about the intermediate too, not the root's
# responder of its AIA: the intermediate's responder, which the root did
# not delegate, is not believed about it

is(get('/pinned', 'pia'), '403 deny ocsp_unavailable',
	'mtls_ocsp_responder: asked about the intermediate, not believed');
like(Mtls::wait_log($t, 0, qr/look-up of "CN=int_pin"/),
	qr/at "http:\/\/127\.0\.0\.1:@{[ port(8092) ]}\/" failed: .*not signed/,
	'mtls_ocsp_responder: the intermediate\'s look-up there');
cmp_ok($responder{int_pin}->requests(), '>=', 2,
	'mtls_ocsp_responder: asked about both');
is($responder{root_pin}->requests(), 0,
	'mtls_ocsp_responder: the AIA\'s responder not asked');

# the intermediate revoked at the root's responder while a client holds a
# keep-alive connection and a session to resume

my $ka = Mtls::KeepAlive->new(port => port(8443), cert => "$d/alice");
my $ctx = Mtls::client_ctx("$d/alice");

is(Mtls::outcome($ka && $ka->get('/')), '200 allow', 'live: keep-alive');
like(Mtls::resumed_get(port(8443), $ctx, '/'), qr/X-Decision: allow/,
	'live: new session');
like(Mtls::resumed_get(port(8443), $ctx, '/'), qr/X-Reused: r/,
	'live: resumed session allowed');

$responder{root}->stop();
root_index('int_leaf', 'int');
$responder{root}->start();
my $start = Time::HiRes::time();

my $denied = Mtls::wait_for(sub {
	Mtls::outcome($ka && $ka->get('/')) eq '403 deny revoked'
}, 8);
my $took = Time::HiRes::time() - $start;
ok($denied, 'live: keep-alive denied');
# a refresh is due in whole seconds; a look-up that fails while the
# responder restarts is tried again after "errors"
cmp_ok($took, '<', 4, 'live: within the refresh interval and a look-up');
diag(sprintf('intermediate\'s revocation seen after %.2f s', $took));

my $r = Mtls::resumed_get(port(8443), $ctx, '/');
is(Mtls::outcome($r), '403 deny revoked', 'live: resumed session denied');
is(Mtls::header($r, 'X-Reused'), 'r', 'live: resumed');
is(get('/', 'carol'), '403 deny revoked',
	'intermediate revoked: another client of it');
is(get('/', 'dan'), '200 allow', 'intermediate revoked: another one goes on');

$ka->close() if $ka;
$_->stop() for values %responder;

###############################################################################
