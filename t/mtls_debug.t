#!/usr/bin/perl

# Tests for the mtls module: each request's decision in nginx's debug log
# (error_log ... debug), where nginx is built --with-debug.

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

# The module's debug lines go through nginx's debug log, which a binary
# built without --with-debug does not have (Debian's nginx has it).
plan(skip_all => "$Test::Nginx::NGINX is built without --with-debug")
	unless $t->has_module('debug');

$t->plan(15);

$t->write_file_expand('nginx.conf', <<'EOF');

%%TEST_GLOBALS%%

daemon off;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    add_header X-Decision $mtls_decision always;
    add_header X-Reason $mtls_reason always;

    server {
        listen       127.0.0.1:%%PORT_8443%% ssl;
        server_name  localhost;

        ssl_certificate localhost.crt;
        ssl_certificate_key localhost.key;
        ssl_client_certificate ca.crt;
        ssl_verify_client optional_no_ca;

        location /cn {
            mtls_allow_cn alice;
            try_files /ok =404;
        }

        location /off {
            mtls off;
            try_files /ok =404;
        }
    }

    server {
        listen       127.0.0.1:%%PORT_8444%% ssl;
        server_name  localhost;

        ssl_certificate localhost.crt;
        ssl_certificate_key localhost.key;
        ssl_client_certificate ca.crt;
        ssl_verify_client optional_no_ca;

        mtls_crl ca.crl;

        location /revocation {
            mtls_deny_list deny.txt;
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
$pki->crl('ca.crl', ca => 'ca', revoke => [ 'bob' ], number => 1);

$t->write_file('deny.txt', "# nobody\n");
$t->write_file('ok', "ok\n");

$t->run();

###############################################################################

my $port = port(8443);

# alice, twice in the same location on one connection: decided, then reused

my $mark = Mtls::log_mark($t);
my $ka = Mtls::KeepAlive->new(port => $port, cert => "$d/alice");
is(Mtls::outcome($ka && $ka->get('/cn')), '200 allow', 'alice allowed');

my $log = since($t, $mark);
like($log, qr/\[debug\].*mtls: rules in effect: mtls_allow_\*; client certificate: verified/,
	'rules and certificate');
like($log, qr/mtls: allow, read of the certificate: cn "alice"/,
	'decision and the CN it read');
unlike($log, qr/mtls: allow, read of the certificate: .*subject/,
	'a CN rule reads no subject');

$mark = Mtls::log_mark($t);
is(Mtls::outcome($ka && $ka->get('/cn')), '200 allow', 'alice again');
like(since($t, $mark), qr/mtls: allow, reused: passed in this location before/,
	'cached decision reused');

# bob: the sources consulted, their generations, and what decided

$mark = Mtls::log_mark($t);
is(Mtls::outcome(Mtls::https_get(port(8444), '/revocation', "$d/bob")),
	'403 deny revoked', 'bob revoked');
$log = since($t, $mark);
like($log, qr/mtls: mtls_deny_list "[^"]*deny\.txt", generation 1: serial [0-9A-F]+: not listed/,
	'deny list consulted');
like($log, qr/mtls: mtls_crl "[^"]*ca\.crl", generation 1: the leaf \(serial [0-9A-F]+\): revoked/,
	'CRL consulted');
like($log, qr/mtls: deny revoked, read of the certificate: nothing/,
	'revocation reads its keys, not the identity');
like($log, qr/\[error\].*access forbidden by mtls: revoked, .*by "[^"]*ca\.crl"/,
	'denial names the CRL');

# no certificate, and a location where mtls is off

$mark = Mtls::log_mark($t);
is(Mtls::outcome(Mtls::https_get($port, '/cn')), '403 deny no_cert',
	'no certificate');
like(since($t, $mark), qr/client certificate: none(?s:.*)mtls: deny no_cert, read of the certificate: nothing/,
	'no certificate logged');

$mark = Mtls::log_mark($t);
is(Mtls::outcome(Mtls::https_get($port, '/off', "$d/alice")), '200 off',
	'off');
unlike(substr($t->read_file('error.log'), $mark), qr/mtls:/,
	'off: the module says nothing');

###############################################################################

# what $t's error log says from $mark on, once the decision's line is there
sub since {
	my ($t, $mark) = @_;
	Mtls::wait_log($t, $mark, qr/mtls: (?:allow|deny)/);
	return substr($t->read_file('error.log'), $mark);
}

###############################################################################
