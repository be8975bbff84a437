#!/usr/bin/perl

# Tests for the mtls module: mtls_issuer.

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
	->plan(17);

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
        ssl_client_certificate cas.crt;
        ssl_verify_client optional_no_ca;
        ssl_verify_depth 2;

        location /any {
            mtls_allow_cn admin;
            try_files /ok =404;
        }

        location /one {
            mtls_allow_cn admin;
            mtls_issuer "CN=CA One,O=Example";
            try_files /ok =404;
        }

        location /two {
            mtls_issuer "CN=CA Two,O=Example" "CN=Other,O=Example";
            mtls_allow_cn admin;
            try_files /ok =404;
        }

        location /issuer_only {
            mtls_issuer "CN=CA One,O=Example";
            try_files /ok =404;
        }

        location /int {
            mtls_allow_cn admin;
            mtls_issuer "CN=Int CA,O=Example";
            try_files /ok =404;
        }

        location /order {
            mtls_allow_cn bob;
            mtls_issuer "CN=CA One,O=Example";
            try_files /ok =404;
        }

        location /escaped {
            mtls_issuer "CN=CA\20One,O=Example";
            try_files /ok =404;
        }
    }
}

EOF

my $d = $t->testdir();
my $pki = Mtls::PKI->new($d);

$pki->ca('ca1', subj => '/O=Example/CN=CA One');
$pki->ca('ca2', subj => '/O=Example/CN=CA Two');
$pki->ca('int', ca => 'ca1', subj => '/O=Example/CN=Int CA');

$t->write_file('cas.crt',
	$t->read_file('ca1.crt') . $t->read_file('ca2.crt'));

$pki->leaf('localhost', ca => 'ca1', subj => '/CN=localhost',
	san => 'DNS:localhost', eku => 'serverAuth');

$pki->leaf('admin1', ca => 'ca1', subj => '/O=Example/CN=admin');
$pki->leaf('admin2', ca => 'ca2', subj => '/O=Example/CN=admin');
$pki->leaf('admin_int', ca => 'int', subj => '/O=Example/CN=admin');
$pki->leaf('bob1', ca => 'ca1', subj => '/O=Example/CN=bob');

$t->write_file('ok', "ok\n");

$t->run();

###############################################################################

# both CAs are trusted

is(get('/any', 'admin1'), '200 allow', 'any: first CA');
is(get('/any', 'admin2'), '200 allow', 'any: second CA');

# the issuer limits which CA's admin is allowed

is(get('/one', 'admin1'), '200 allow', 'one: first CA');
is(get('/one', 'admin2'), '403 deny issuer', 'one: second CA');
is(get('/two', 'admin2'), '200 allow', 'two: second CA');
is(get('/two', 'admin1'), '403 deny issuer', 'two: first CA');

# without identity rules

is(get('/issuer_only', 'admin1'), '200 allow', 'issuer only: first CA');
is(get('/issuer_only', 'bob1'), '200 allow', 'issuer only: any name');
is(get('/issuer_only', 'admin2'), '403 deny issuer', 'issuer only: second CA');

# the immediate issuer

is(get('/int', 'admin_int'), '200 allow', 'intermediate');
is(get('/one', 'admin_int'), '403 deny issuer', 'intermediate: not the root');

# reasons in order

is(get('/order', 'admin2'), '403 deny issuer', 'order: issuer first');
is(get('/order', 'admin1'), '403 deny not_allowed', 'order: not allowed');
is(get('/order', 'bob1'), '200 allow', 'order: allowed');

# compared structurally

is(get('/escaped', 'admin1'), '200 allow', 'escaped: first CA');
is(get('/escaped', 'admin2'), '403 deny issuer', 'escaped: second CA');

$t->stop();

like($t->read_file('error.log'),
	qr/\[error\] .*access forbidden by mtls: issuer, subject: "CN=admin,O=Example", serial: [0-9A-F]+,/,
	'log');

###############################################################################

sub get {
	my ($uri, $cert) = @_;
	return outcome(https_get(port(8443), $uri, "$d/$cert"));
}

###############################################################################
