#!/usr/bin/perl

# Tests for the mtls module: mtls_deny_serial.

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
	->plan(18);

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

        location /colon {
            mtls_allow_cn alice bob carol dave;
            mtls_deny_serial 10:02;
            try_files /ok =404;
        }

        location /zeros {
            mtls_allow_cn alice bob carol dave;
            mtls_deny_serial 0000001002;
            try_files /ok =404;
        }

        location /lower {
            mtls_allow_cn alice bob carol dave;
            mtls_deny_serial 80ab;
            try_files /ok =404;
        }

        location /multi {
            mtls_allow_cn alice bob carol dave;
            mtls_deny_serial 00:80:AB 9999;
            mtls_deny_serial 100;
            try_files /ok =404;
        }

        location /only {
            mtls_deny_serial 1002;
            try_files /ok =404;
        }

        location /order {
            mtls_allow_cn nobody;
            mtls_deny_serial 1002;
            try_files /ok =404;
        }
    }
}

EOF

my $d = $t->testdir();
my $pki = Mtls::PKI->new($d);

$pki->ca('ca', subj => '/O=Example/CN=Test CA');
$pki->leaf('localhost', ca => 'ca', subj => '/CN=localhost',
	san => 'DNS:localhost', eku => 'serverAuth', serial => '0x2001');

$pki->leaf('alice', ca => 'ca', subj => '/O=Example/CN=alice',
	serial => '0x1002');
$pki->leaf('bob', ca => 'ca', subj => '/O=Example/CN=bob',
	serial => '0x80AB');
$pki->leaf('carol', ca => 'ca', subj => '/O=Example/CN=carol',
	serial => '0x1003');
$pki->leaf('dave', ca => 'ca', subj => '/O=Example/CN=dave',
	serial => '0x100');
$pki->self_signed('self', subj => '/O=Example/CN=alice', serial => '0x1002');

$t->write_file('ok', "ok\n");

$t->run();

###############################################################################

is(serial_hex("$d/bob.crt"), '80AB', 'bob serial');
is(serial_hex("$d/dave.crt"), '0100', 'dave serial');

# spellings of the serial number; deny wins over a matching allow

is(get('/colon', 'alice'), '403 deny serial_denied', 'colons');
is(get('/colon', 'carol'), '200 allow', 'colons: other serial');
is(get('/zeros', 'alice'), '403 deny serial_denied', 'leading zeros');
is(get('/zeros', 'carol'), '200 allow', 'leading zeros: other serial');
is(get('/lower', 'bob'), '403 deny serial_denied', 'lower case');
is(get('/lower', 'alice'), '200 allow', 'lower case: other serial');
is(get('/multi', 'bob'), '403 deny serial_denied', 'multi: first value');
is(get('/multi', 'dave'), '403 deny serial_denied',
	'multi: second directive, odd length');
is(get('/multi', 'alice'), '200 allow', 'multi: other serial');

# without identity rules

is(get('/only', 'alice'), '403 deny serial_denied', 'only: denied');
is(get('/only', 'carol'), '200 allow', 'only: other serial');
is(get('/only'), '403 deny no_cert', 'only: no certificate');
is(get('/only', 'self'), '403 deny unverified', 'only: unverified first');

# reasons in order

is(get('/order', 'alice'), '403 deny serial_denied', 'order: serial first');
is(get('/order', 'carol'), '403 deny not_allowed', 'order: not allowed');

$t->stop();

like($t->read_file('error.log'),
	qr/\[error\] .*access forbidden by mtls: serial_denied, subject: "CN=alice,O=Example", serial: 1002,/,
	'log');

###############################################################################

sub get {
	my ($uri, $cert) = @_;

	$cert = "$d/$cert" if defined $cert;

	return outcome(https_get(port(8443), $uri, $cert));
}

###############################################################################
