#!/usr/bin/perl

# Tests for the mtls module over HTTP/3: every decision and reason, the
# variables, the log line, mtls_deny_status (444 included) and concurrent
# streams on one QUIC connection, each compared with the same request over
# HTTP/1.1. Where nginx was built without HTTP/3, checks that it refuses a
# "quic" listener.

###############################################################################

use warnings;
use strict;

use Test::More;

BEGIN { use FindBin; chdir($FindBin::Bin); }

use Test::Nginx;
use Mtls;

###############################################################################

select STDERR; $| = 1;
select STDOUT; $| = 1;

my $t = Test::Nginx->new()->has(qw/http http_ssl/)->has_daemon('openssl');

unless ($t->has_module('http_v3')) {
	$t->plan(2);

	diag('nginx was built without --with-http_v3_module: '
		. 'checking that it refuses "listen ... quic"');

	my $out = Mtls::nginx_t($t, <<'EOF');
events {
}

http {
    server {
        listen 127.0.0.1:%%PORT_8943_UDP%% quic;
    }
}
EOF

	like($out, qr/\[emerg\] invalid parameter "quic" in /,
		'no HTTP/3: quic listener refused');
	like($out, qr/test failed/, 'no HTTP/3: nginx -t fails');

	# the two checks of error.log need a log
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

my $curl = Mtls::H3::curl_missing();

$t->plan(40);

my $tls = <<'EOF';
        ssl_certificate localhost.crt;
        ssl_certificate_key localhost.key;
        ssl_client_certificate cas.crt;
        ssl_verify_client optional_no_ca;

        add_header X-Decision $mtls_decision always;
        add_header X-Reason $mtls_reason always;
        add_header X-Proto $server_protocol always;
        add_header X-Port $remote_port always;
EOF

my $conf = <<'EOF';

%%TEST_GLOBALS%%

daemon off;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    server {
        listen       127.0.0.1:%%PORT_8443%% ssl;
        listen       127.0.0.1:%%PORT_8943_UDP%% quic;
        server_name  localhost;
%%TLS%%
        mtls_crl ca.crl;
        mtls_crl other.crl;

        location /a {
            mtls_allow_cn alice;
            try_files /ok =404;
        }

        location /serial {
            mtls_deny_serial %%BOB_SERIAL%%;
            try_files /ok =404;
        }

        location /list {
            mtls_deny_list deny.txt;
            try_files /ok =404;
        }

        location /missing {
            mtls_deny_list missing.txt optional;
            try_files /ok =404;
        }

        location /issuer {
            mtls_issuer "CN=Test CA,O=Example";
            try_files /ok =404;
        }

        location /off {
            mtls off;
            try_files /ok =404;
        }

        location /close {
            mtls_allow_cn bob;
            mtls_deny_status 444;
            try_files /ok =404;
        }

        location /return444 {
            mtls off;
            return 444;
        }

        location /nocert {
            mtls_deny_status 496;
            try_files /ok =404;
        }

        location /vars {
            try_files /ok =404;

            add_header X-Decision $mtls_decision always;
            add_header X-Reason $mtls_reason always;
            add_header X-Subject $mtls_subject always;
            add_header X-Issuer $mtls_issuer always;
            add_header X-CN $mtls_cn always;
            add_header X-Serial $mtls_serial always;
            add_header X-Fingerprint $mtls_fingerprint always;
            add_header X-San-DNS $mtls_san_dns always;
            add_header X-San-Email $mtls_san_email always;
            add_header X-San-URI $mtls_san_uri always;
            add_header X-San-IP $mtls_san_ip always;
            add_header X-Spiffe $mtls_spiffe_id always;
            add_header X-Not-After $mtls_not_after always;
            add_header X-Expires-In $mtls_expires_in always;
        }
    }

    server {
        listen       127.0.0.1:%%PORT_8080%%;
        server_name  localhost;

        location /status {
            mtls off;
            mtls_status;
        }
    }

    # a CRL past its nextUpdate

    server {
        listen       127.0.0.1:%%PORT_8444%% ssl;
        listen       127.0.0.1:%%PORT_8944_UDP%% quic;
        server_name  localhost;
%%TLS%%
        mtls_crl stale.crl;

        location / {
            try_files /ok =404;
        }
    }

    # no CRL for the other CA

    server {
        listen       127.0.0.1:%%PORT_8445%% ssl;
        listen       127.0.0.1:%%PORT_8945_UDP%% quic;
        server_name  localhost;
%%TLS%%
        mtls_crl ca.crl;

        location / {
            try_files /ok =404;
        }
    }
}

EOF

my $d = $t->testdir();
my $pki = Mtls::PKI->new($d);

$pki->ca('ca', subj => '/O=Example/CN=Test CA');
$pki->ca('other', subj => '/O=Example/CN=Other CA');
$pki->leaf('localhost', ca => 'ca', subj => '/CN=localhost',
	san => 'DNS:localhost', eku => 'serverAuth');

$pki->leaf('alice', ca => 'ca', subj => '/O=Example/CN=alice',
	san => 'DNS:alice.example.org,email:alice@example.org,'
	. 'IP:192.0.2.7,URI:spiffe://example.org/ns/prod/sa/alice');
$pki->leaf($_, ca => 'ca', subj => "/O=Example/CN=$_") for qw/bob carol/;
$pki->leaf('dave', ca => 'other', subj => '/O=Example/CN=dave');
$pki->self_signed('self', subj => '/O=Example/CN=alice');

Mtls::spew("$d/cas.crt", Mtls::slurp("$d/ca.crt") . Mtls::slurp("$d/other.crt"));

$pki->crl('ca.crl', ca => 'ca', revoke => [ 'carol' ]);
$pki->crl('other.crl', ca => 'other');
$pki->crl('stale.crl', ca => 'ca', lastupdate => Mtls::asn1_time(time() - 7200),
	nextupdate => Mtls::asn1_time(time() - 3600));

$t->write_file('deny.txt', "# bob, by fingerprint\nsha256:"
	. der_fingerprint_sha256("$d/bob.crt") . "\n");
$t->write_file('ok', "ok\n");

my $bob_serial = serial_hex("$d/bob.crt");
$conf =~ s/%%TLS%%\n/$tls/g;
$conf =~ s/%%BOB_SERIAL%%/$bob_serial/g;
$t->write_file_expand('nginx.conf', $conf);

$t->run();

###############################################################################

# one HTTP/3 connection per client and server, reused for all its requests

my %h3;

sub h3 {
	my ($cert, $port) = @_;
	my $key = ($cert // 'none') . ":$port";
	$h3{$key} //= Mtls::H3->new(port => port($port + 500, udp => 1),
		$cert ? (cert => "$d/$cert") : ());
	return $h3{$key};
}

# "HTTP/3: OUTCOME | HTTP/1.1: OUTCOME", for a request made both ways

sub both {
	my ($uri, $cert, $port) = @_;
	$port //= 8443;
	my $h3 = h3($cert, $port);
	my $r3 = $h3 && $h3->get($uri);
	my $r1 = https_get(port($port), $uri, $cert ? "$d/$cert" : undef);
	my $proto = header($r3, 'X-Proto') // 'none';
	return 'HTTP/3 ' . outcome($r3) . ($proto eq 'HTTP/3.0' ? '' : " ($proto)")
		. ' | HTTP/1.1 ' . outcome($r1);
}

sub same {
	my ($uri, $cert, $port, $expect, $name) = @_;
	is(both($uri, $cert, $port), "HTTP/3 $expect | HTTP/1.1 $expect", $name);
}

# every decision and reason

same('/a', 'alice', 8443, '200 allow', 'allow');
same('/off', 'alice', 8443, '200 off', 'off');
same('/a', undef, 8443, '403 deny no_cert', 'no_cert');
same('/a', 'self', 8443, '403 deny unverified', 'unverified');
same('/serial', 'bob', 8443, '403 deny serial_denied', 'serial_denied');
same('/a', 'carol', 8443, '403 deny revoked', 'revoked by CRL');
same('/list', 'bob', 8443, '403 deny revoked', 'revoked by deny list');
same('/list', 'alice', 8443, '200 allow', 'not in deny list');
same('/missing', 'alice', 8443, '403 deny deny_list_missing',
	'deny_list_missing');
same('/', 'dave', 8445, '403 deny crl_missing', 'crl_missing');
same('/', 'alice', 8444, '403 deny crl_stale', 'crl_stale');
same('/issuer', 'dave', 8443, '403 deny issuer', 'issuer');
same('/issuer', 'alice', 8443, '200 allow', 'issuer: allowed');
same('/a', 'bob', 8443, '403 deny not_allowed', 'not_allowed');

# the requests of each client went on one QUIC connection

my $alice = h3('alice', 8443);
my $info = $alice && $alice->info();
is($info && "$info->{requests} $info->{handshake}", '5 1',
	'alice: five requests on one connection');

my @ports = map { header($_, 'X-Port') // 'none' }
	$alice ? $alice->get_many('/a', '/off') : ();
is_deeply(\@ports, [ ($info->{local_port}) x 2 ],
	'alice: from one client port');

# the variables, as over HTTP/1.1

my @vars = qw/X-Decision X-Reason X-Subject X-Issuer X-CN X-Serial
	X-Fingerprint X-San-DNS X-San-Email X-San-URI X-San-IP X-Spiffe
	X-Not-After/;

my $r3 = $alice && $alice->get('/vars');
my $r1 = https_get(port(8443), '/vars', "$d/alice");

is_deeply({ map { $_ => header($r3, $_) } @vars },
	{ map { $_ => header($r1, $_) } @vars }, 'variables as over HTTP/1.1');
is(header($r3, 'X-Subject'), 'CN=alice,O=Example', 'variables: subject');
is(header($r3, 'X-San-URI'), 'spiffe://example.org/ns/prod/sa/alice',
	'variables: SAN URI');
is(header($r3, 'X-Spiffe'), 'spiffe://example.org/ns/prod/sa/alice',
	'variables: SPIFFE ID');
is(header($r3, 'X-Serial'), serial_hex("$d/alice.crt"), 'variables: serial');
is(header($r3, 'X-Fingerprint'), der_fingerprint_sha256("$d/alice.crt"),
	'variables: fingerprint');
is(header($r3, 'X-Not-After'),
	Mtls::strftime('%Y-%m-%dT%H:%M:%SZ', gmtime(not_after_epoch("$d/alice.crt"))),
	'variables: not after');
like(header($r3, 'X-Expires-In'), qr/^\d+$/, 'variables: expires in');

# an unverified certificate's names never show

$r3 = h3('self', 8443) && h3('self', 8443)->get('/vars');
is(join(',', map { header($r3, $_) } qw/X-Decision X-Subject X-CN X-Serial/),
	'deny,,,', 'unverified: no variables');

# concurrent streams with different decisions on bob's connection

my $bob = h3('bob', 8443);
is(join(', ', map { outcome($_) }
	$bob ? $bob->get_many(qw(/serial /list /a /off /issuer /close)) : ()),
	'403 deny serial_denied, 403 deny revoked, 403 deny not_allowed, '
	. '200 off, 200 allow, 200 allow', 'bob: concurrent streams');

# mtls_deny_status: 496 answers 400; 444 resets the stream, with the code
# of nginx's own "return 444" (H3_GENERAL_PROTOCOL_ERROR, as nginx marks
# the request timed out), and the connection goes on

same('/nocert', undef, 8443, '400 deny no_cert', 'deny status 496');

my $r = $alice && $alice->get('/close');
my $own = $alice && $alice->get('/return444');
is($r && $r->{status}, 'reset', '444: stream reset');
is($r && $r->{error}, $own && $own->{error}, '444: as return 444');
is($own && $own->{error}, 0x101, '444: H3_GENERAL_PROTOCOL_ERROR');
is(outcome($alice && $alice->get('/a')), '200 allow', '444: connection goes on');
is(outcome($bob && $bob->get('/close')), '200 allow', '444: bob allowed');

$r1 = https_get(port(8443), '/close', "$d/alice");
is($r1, '', '444 over HTTP/1.1: closed without a response');

# the log line names the protocol

like($t->read_file('error.log'),
	qr/\[error\] .* access forbidden by mtls: not_allowed, subject: "CN=bob,O=Example", serial: \Q$bob_serial\E, client: 127\.0\.0\.1, server: localhost, request: "GET \/a HTTP\/3\.0"/,
	'log line');

# the certificate is cached per QUIC connection: a second connection of
# another client is decided on its own certificate

my $carol = Mtls::H3->new(port => port(8943, udp => 1), cert => "$d/bob");
is(outcome($carol && $carol->get('/a')), '403 deny not_allowed',
	'second client: its own decision');
$carol->close() if $carol;

# the counters of mtls_status count HTTP/3 requests

my $before = Mtls::mtls_status(port(8080));
$_ && $_->get('/a') for h3('alice', 8443), h3('bob', 8443), h3(undef, 8443),
	h3('carol', 8443), h3('carol', 8443);
my $after = Mtls::mtls_status(port(8080));

my %delta = map {
	my ($b, $a) = ($before->{requests}, $after->{requests});
	$_ => $_ eq 'allowed' ? $a->{$_} - $b->{$_}
		: $a->{denied}{$_} - $b->{denied}{$_}
} qw/allowed not_allowed no_cert revoked issuer/;

is_deeply(\%delta, { allowed => 1, not_allowed => 1, no_cert => 1,
	revoked => 2, issuer => 0 }, 'counters');

# curl, another QUIC stack

SKIP: {
skip($curl, 4) if $curl;

is(outcome(Mtls::H3::curl_get(port(8943, udp => 1), '/a', "$d/alice")), '200 allow',
	'curl: allow');
is(outcome(Mtls::H3::curl_get(port(8943, udp => 1), '/a', "$d/bob")),
	'403 deny not_allowed', 'curl: not_allowed');
is(outcome(Mtls::H3::curl_get(port(8943, udp => 1), '/a')), '403 deny no_cert',
	'curl: no_cert');
is(outcome(Mtls::H3::curl_get(port(8943, udp => 1), '/a', "$d/carol")),
	'403 deny revoked', 'curl: revoked');
}

$_ && $_->close() for values %h3;

###############################################################################
