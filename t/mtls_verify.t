#!/usr/bin/perl

# Tests for the mtls module: a client certificate must be present and
# verified, whatever ssl_verify_client says.

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
	->plan(30);

$t->write_file_expand('nginx.conf', <<'EOF');

%%TEST_GLOBALS%%

daemon off;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ssl_certificate localhost.crt;
    ssl_certificate_key localhost.key;
    ssl_client_certificate ca.crt;
    ssl_verify_depth 2;

    add_header X-Decision $mtls_decision always;
    add_header X-Reason $mtls_reason always;

    server {
        listen       127.0.0.1:%%PORT_8443%% ssl;
        server_name  localhost;

        ssl_verify_client optional_no_ca;

        location /on {
            mtls on;
            try_files /ok =404;
        }

        location /off {
            mtls off;
            try_files /ok =404;
        }

        location /none {
            try_files /ok =404;
        }

        location /rules {
            mtls_allow_cn alice;
            try_files /ok =404;
        }

        location /status {
            mtls on;
            mtls_deny_status 401;
            try_files /ok =404;
        }
    }

    server {
        listen       127.0.0.1:%%PORT_8444%% ssl;
        server_name  localhost;

        ssl_verify_client optional;

        location / {
            mtls on;
            try_files /ok =404;
        }
    }

    server {
        listen       127.0.0.1:%%PORT_8445%% ssl;
        server_name  localhost;

        ssl_verify_client on;

        location / {
            mtls on;
            try_files /ok =404;
        }
    }
}

EOF

my $d = $t->testdir();
my $pki = Mtls::PKI->new($d);

$pki->ca('ca', subj => '/O=Example/CN=Test CA');
$pki->ca('int', ca => 'ca', subj => '/O=Example/CN=Int CA');
$pki->ca('other', subj => '/O=Example/CN=Test CA');

$pki->leaf('localhost', ca => 'ca', subj => '/CN=localhost',
	san => 'DNS:localhost', eku => 'serverAuth');

$pki->leaf('alice', ca => 'ca', subj => '/O=Example/CN=alice');
$pki->leaf('bob', ca => 'ca', subj => '/O=Example/CN=bob');
$pki->leaf('deep', ca => 'int', subj => '/O=Example/CN=alice');
$pki->self_signed('self', subj => '/O=Example/CN=alice');
$pki->leaf('wrongca', ca => 'other', subj => '/O=Example/CN=alice');
$pki->leaf('expired', ca => 'ca', subj => '/O=Example/CN=alice',
	startdate => asn1_time(time() - 30 * 86400),
	enddate => asn1_time(time() - 86400));
$pki->leaf('notyet', ca => 'ca', subj => '/O=Example/CN=alice',
	startdate => asn1_time(time() + 86400),
	enddate => asn1_time(time() + 30 * 86400));

$t->write_file('ok', "ok\n");

$t->run();

###############################################################################

# mtls on, ssl_verify_client optional_no_ca

is(get('/on', 'alice'), '200 allow', 'on: verified certificate');
is(get('/on'), '403 deny no_cert', 'on: no certificate');
is(get('/on', 'self'), '403 deny unverified', 'on: self-signed');
is(get('/on', 'wrongca'), '403 deny unverified', 'on: unknown CA');
is(get('/on', [ "$d/deep.crt", "$d/deep.key" ]), '403 deny unverified',
	'on: intermediate not sent');
is(get('/on', 'deep'), '200 allow', 'on: intermediate sent');

# a certificate that fails verification for another reason than a missing
# issuer is rejected by nginx itself (400) before any access handler runs,
# even with optional_no_ca

like(get('/on', 'expired'), qr/^400\b/, 'on: expired');
like(get('/on', 'notyet'), qr/^400\b/, 'on: not yet valid');

# mtls off, or nothing configured

is(get('/off', 'alice'), '200 off', 'off: verified certificate');
is(get('/off'), '200 off', 'off: no certificate');
is(get('/off', 'self'), '200 off', 'off: self-signed');
is(get('/none', 'alice'), '200 off', 'no rules: verified certificate');
is(get('/none'), '200 off', 'no rules: no certificate');
is(get('/none', 'self'), '200 off', 'no rules: self-signed');

# identity rules turn checks on

is(get('/rules', 'alice'), '200 allow', 'rules: allowed');
is(get('/rules'), '403 deny no_cert', 'rules: no certificate');
is(get('/rules', 'self'), '403 deny unverified', 'rules: self-signed');
is(get('/rules', 'wrongca'), '403 deny unverified', 'rules: unknown CA');
is(get('/rules', 'bob'), '403 deny not_allowed', 'rules: not allowed');

# mtls_deny_status

is(get('/status'), '401 deny no_cert', 'deny status: no certificate');
is(get('/status', 'self'), '401 deny unverified', 'deny status: self-signed');

# ssl_verify_client optional: nginx rejects a bad certificate itself

is(get('/', 'alice', 8444), '200 allow', 'optional: verified certificate');
like(get('/', 'self', 8444), qr/^400\b/, 'optional: self-signed by nginx');
is(get('/', undef, 8444), '403 deny no_cert', 'optional: no certificate');

# ssl_verify_client on

is(get('/', 'alice', 8445), '200 allow', 'on: verified certificate');
like(get('/', undef, 8445), qr/^400\b/, 'on: no certificate by nginx');

# denied requests are logged at the error level

$t->stop();

my $log = $t->read_file('error.log');
my $bob_serial = serial_hex("$d/bob.crt");

like($log, qr/\[error\] .*access forbidden by mtls: not_allowed, subject: "CN=bob,O=Example", serial: \Q$bob_serial\E, client: 127\.0\.0\.1/,
	'log: not allowed');
like($log, qr/\[error\] .*access forbidden by mtls: no_cert\b/,
	'log: no certificate');
like($log, qr/\[error\] .*access forbidden by mtls: unverified\b/,
	'log: unverified');
unlike($log, qr/access forbidden by mtls: .*request: "GET \/(off|none)/,
	'log: nothing for mtls off');

###############################################################################

sub get {
	my ($uri, $cert, $port) = @_;

	$cert = "$d/$cert" if defined $cert && !ref $cert;

	return outcome(https_get(port($port // 8443), $uri, $cert));
}

###############################################################################
