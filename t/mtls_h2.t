#!/usr/bin/perl

# Tests for the mtls module: a decision per stream on one HTTP/2 connection.

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

eval { require Protocol::HTTP2::Client; };
plan(skip_all => 'Protocol::HTTP2 not installed') if $@;

my $t = Test::Nginx->new()->has(qw/http http_ssl http_v2/)
	->has_daemon('openssl')->plan(15);

$t->write_file_expand('nginx.conf', <<'EOF');

%%TEST_GLOBALS%%

daemon off;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    add_header X-Decision $mtls_decision always;
    add_header X-Reason $mtls_reason always;
    add_header X-Conn $connection always;

    server {
        listen       127.0.0.1:%%PORT_8443%% ssl http2;
        server_name  localhost;

        ssl_certificate localhost.crt;
        ssl_certificate_key localhost.key;
        ssl_client_certificate ca.crt;
        ssl_verify_client optional_no_ca;

        location /a {
            mtls_allow_cn alice;
            try_files /ok =404;
        }

        location /b {
            mtls_allow_cn bob;
            try_files /ok =404;
        }

        location /off {
            mtls off;
            try_files /ok =404;
        }

        location /status {
            mtls_allow_cn bob;
            mtls_deny_status 401;
            try_files /ok =404;
        }
    }
}

EOF

my $d = $t->testdir();
my $pki = Mtls::PKI->new($d);

$pki->ca('ca', subj => '/O=Example/CN=Test CA');
$pki->leaf('localhost', ca => 'ca', subj => '/CN=localhost',
	san => 'DNS:localhost', eku => 'serverAuth');

$pki->leaf($_, ca => 'ca', subj => "/O=Example/CN=$_") for qw/alice bob/;
$pki->self_signed('self', subj => '/O=Example/CN=alice');

$t->write_file('ok', "ok\n");

$t->run();

###############################################################################

# streams one after another on alice's connection

my $h2 = Mtls::H2->new(port => port(8443), SSL_cert_file => "$d/alice.crt",
	SSL_key_file => "$d/alice.key");

ok($h2, 'alice: h2 connection');

my @r = map { $h2 ? $h2->get($_) : undef } qw(/a /b /a /off /status);

is(outcome($r[0]), '200 allow', 'alice: allowed');
is(outcome($r[1]), '403 deny not_allowed', 'alice: denied');
is(outcome($r[2]), '200 allow', 'alice: allowed again');
is(outcome($r[3]), '200 off', 'alice: off');
is(outcome($r[4]), '401 deny not_allowed', 'alice: deny status');

my %conn = map { header($_, 'X-Conn') // 'none' => 1 } @r;

is(join(' ', sort keys %conn), header($r[0], 'X-Conn'),
	'alice: one connection');

# concurrent streams

@r = $h2 ? $h2->get_many(qw(/b /a /off /a)) : ();

is(join(', ', map { outcome($_) } @r),
	'403 deny not_allowed, 200 allow, 200 off, 200 allow',
	'alice: concurrent streams');
is($r[1] && $r[1]{body}, "ok\n", 'alice: body');

$h2->close() if $h2;

# bob

$h2 = Mtls::H2->new(port => port(8443), cert => "$d/bob");

is(outcome($h2 && $h2->get('/b')), '200 allow', 'bob: allowed');
is(outcome($h2 && $h2->get('/a')), '403 deny not_allowed', 'bob: denied');
is(outcome($h2 && $h2->get('/status')), '200 allow', 'bob: allowed again');

# no certificate, self-signed

$h2 = Mtls::H2->new(port => port(8443));

is(outcome($h2 && $h2->get('/a')), '403 deny no_cert', 'no cert: denied');
is(outcome($h2 && $h2->get('/off')), '200 off', 'no cert: off');

$h2 = Mtls::H2->new(port => port(8443), cert => "$d/self");

is(outcome($h2 && $h2->get('/a')), '403 deny unverified', 'self-signed');

###############################################################################
