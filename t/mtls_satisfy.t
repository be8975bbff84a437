#!/usr/bin/perl

# Tests for the mtls module with "satisfy any": a valid certificate is
# enough on its own, and a denial is logged as nginx's access module logs
# one (not at "error" while another module may still allow the request).

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

my $t = Test::Nginx->new()->has(qw/http http_ssl access/)
	->has_daemon('openssl')->plan(13);

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

        # the address is never allowed: the certificate decides
        location /any {
            satisfy any;
            allow 192.0.2.1;
            deny all;
            mtls_allow_cn alice;
            try_files /ok =404;
        }

        # the address is allowed: enough on its own
        location /any-address {
            satisfy any;
            allow 127.0.0.1;
            deny all;
            mtls_allow_cn alice;
            try_files /ok =404;
        }

        # a status other than 403 or 401 answers at once, as any other
        location /any-status {
            satisfy any;
            allow 127.0.0.1;
            deny all;
            mtls_allow_cn alice;
            mtls_deny_status 451;
            try_files /ok =404;
        }

        location /all {
            mtls_allow_cn alice;
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

my $port = port(8443);

is(get('/any', 'alice'), '200 allow', 'any: certificate enough');

my $mark = Mtls::log_mark($t);
is(get('/any', 'bob'), '403 deny not_allowed', 'any: both deny');
my $log = since($t, $mark, qr/access forbidden by rule/);
like($log, qr/\[error\].*access forbidden by rule/,
	'any: nginx logs the final denial');
like($log, qr/\[info\].*access forbidden by mtls: not_allowed, subject: "CN=bob/,
	'any: mtls reason at info');
unlike($log, qr/\[error\].*access forbidden by mtls/,
	'any: no mtls line at error');

$mark = Mtls::log_mark($t);
is(get('/any-address', 'bob'), '200 deny not_allowed',
	'any: the address allows, the variable still says deny');
is(get('/any-address'), '200 deny no_cert', 'any: no certificate needed');
unlike(since($t, $mark, qr/no_cert/), qr/\[error\]/, 'any: nothing at error');

$mark = Mtls::log_mark($t);
is(get('/any-status', 'bob'), '451 deny not_allowed',
	'any: another status answers at once');
like(since($t, $mark, qr/access forbidden by mtls/),
	qr/\[error\].*access forbidden by mtls: not_allowed/,
	'any: another status logged at error');

$mark = Mtls::log_mark($t);
is(get('/all', 'bob'), '403 deny not_allowed', 'all: denied');
$log = since($t, $mark, qr/access forbidden by mtls/);
like($log, qr/\[error\].*access forbidden by mtls: not_allowed/,
	'all: logged at error');
unlike($log, qr/access forbidden by rule/, 'all: no line of nginx\'s');

###############################################################################

sub get {
	my ($uri, $cert) = @_;
	return Mtls::outcome(Mtls::https_get($port, $uri,
		defined $cert ? "$d/$cert" : undef));
}

# what $t's error log says from $mark on, once a line matches $re (or
# after a timeout); the last request's lines with it
sub since {
	my ($t, $mark, $re) = @_;
	Mtls::wait_log($t, $mark, $re, 2);
	return substr($t->read_file('error.log'), $mark);
}

###############################################################################
