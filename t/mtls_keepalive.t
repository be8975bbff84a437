#!/usr/bin/perl

# Tests for the mtls module: a decision per request on one HTTP/1.1
# keep-alive connection.

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

my $t = Test::Nginx->new()->has(qw/http http_ssl/)->has_daemon('openssl')
	->plan(13);

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
    add_header X-Req $connection_requests always;

    server {
        listen       127.0.0.1:%%PORT_8443%% ssl;
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

$t->write_file('ok', "ok\n");

$t->run();

###############################################################################

# requests one after another on alice's connection

my $ka = Mtls::KeepAlive->new(port => port(8443), cert => "$d/alice");

ok($ka, 'alice: connection');

my @r = map { $ka ? $ka->get($_) : undef } qw(/a /b /a /off /status /a);

is(outcome($r[0]), '200 allow', 'alice: allowed');
is(outcome($r[1]), '403 deny not_allowed', 'alice: denied');
is(outcome($r[2]), '200 allow', 'alice: allowed again');
is(outcome($r[3]), '200 off', 'alice: off');
is(outcome($r[4]), '401 deny not_allowed', 'alice: deny status');
is(outcome($r[5]), '200 allow', 'alice: allowed after 401');

my %conn = map { header($_, 'X-Conn') // 'none' => 1 } @r;

is(join(' ', sort keys %conn), header($r[0], 'X-Conn'),
	'alice: one connection');
is(join(' ', map { header($_, 'X-Req') // 'none' } @r), '1 2 3 4 5 6',
	'alice: requests on the connection');

# bob

$ka = Mtls::KeepAlive->new(port => port(8443), cert => "$d/bob");

is(outcome($ka && $ka->get('/a')), '403 deny not_allowed', 'bob: denied');
is(outcome($ka && $ka->get('/b')), '200 allow', 'bob: allowed');

# no certificate

$ka = Mtls::KeepAlive->new(port => port(8443));

is(outcome($ka && $ka->get('/a')), '403 deny no_cert', 'no cert: denied');
is(outcome($ka && $ka->get('/off')), '200 off', 'no cert: off');

###############################################################################
