#!/usr/bin/perl

# Tests for the mtls module: inheritance of rules between levels.

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
	->plan(33);

$t->write_file_expand('nginx.conf', <<'EOF');

%%TEST_GLOBALS%%

daemon off;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ssl_certificate localhost.crt;
    ssl_certificate_key localhost.key;
    ssl_client_certificate cas.crt;

    add_header X-Decision $mtls_decision always;
    add_header X-Reason $mtls_reason always;

    mtls_allow_cn alice;

    server {
        listen       127.0.0.1:%%PORT_8443%% ssl;
        server_name  localhost;

        ssl_verify_client optional_no_ca;

        location /http {
            try_files /ok =404;
        }

        location /loc {
            mtls_allow_cn bob;
            try_files /ok =404;
        }

        location /loc_dn {
            mtls_allow_dn "CN=bob,O=Example";
            try_files /ok =404;
        }

        location /issuer_only {
            mtls_issuer "CN=Test CA,O=Example";
            try_files /ok =404;
        }

        location /off {
            mtls off;
            try_files /ok =404;

            location /off/on {
                mtls on;
                try_files /ok =404;
            }
        }
    }

    server {
        listen       127.0.0.1:%%PORT_8444%% ssl;
        server_name  localhost;

        ssl_verify_client optional_no_ca;

        mtls_deny_serial 2002;
        mtls_deny_status 401;

        location / {
            try_files /ok =404;
        }

        location /cn {
            mtls_allow_cn bob carol;
            try_files /ok =404;
        }

        location /serial {
            mtls_deny_serial 3003;
            try_files /ok =404;
        }

        location /status {
            mtls_deny_status 451;
            try_files /ok =404;
        }
    }

    server {
        listen       127.0.0.1:%%PORT_8445%% ssl;
        server_name  localhost;

        ssl_verify_client optional_no_ca;

        mtls off;

        location / {
            try_files /ok =404;
        }

        location /on {
            mtls on;
            try_files /ok =404;
        }
    }

    server {
        listen       127.0.0.1:%%PORT_8446%% ssl;
        server_name  localhost;

        ssl_verify_client optional_no_ca;

        mtls_allow_cn carol;

        location / {
            try_files /ok =404;
        }

        location /issuer {
            mtls_issuer "CN=CA Two,O=Example";
            try_files /ok =404;
        }
    }
}

EOF

my $d = $t->testdir();
my $pki = Mtls::PKI->new($d);

$pki->ca('ca', subj => '/O=Example/CN=Test CA');
$pki->ca('ca2', subj => '/O=Example/CN=CA Two');

$t->write_file('cas.crt', $t->read_file('ca.crt') . $t->read_file('ca2.crt'));

$pki->leaf('localhost', ca => 'ca', subj => '/CN=localhost',
	san => 'DNS:localhost', eku => 'serverAuth', serial => '0x4004');

$pki->leaf('alice', ca => 'ca', subj => '/O=Example/CN=alice',
	serial => '0x1001');
$pki->leaf('bob', ca => 'ca', subj => '/O=Example/CN=bob',
	serial => '0x2002');
$pki->leaf('carol', ca => 'ca', subj => '/O=Example/CN=carol',
	serial => '0x3003');
$pki->leaf('alice2', ca => 'ca2', subj => '/O=Example/CN=alice',
	serial => '0x5005');

$t->write_file('ok', "ok\n");

$t->run();

###############################################################################

# http level rules in a location without rules

is(get(8443, '/http', 'alice'), '200 allow', 'http rules: alice');
is(get(8443, '/http', 'bob'), '403 deny not_allowed', 'http rules: bob');

# location rules replace them, whatever directive of the family

is(get(8443, '/loc', 'bob'), '200 allow', 'location rules: bob');
is(get(8443, '/loc', 'alice'), '403 deny not_allowed',
	'location rules: alice no more');
is(get(8443, '/loc_dn', 'bob'), '200 allow', 'location dn: bob');
is(get(8443, '/loc_dn', 'alice'), '403 deny not_allowed',
	'location dn: alice no more');

# mtls_issuer is a family of its own: identity rules still inherited

is(get(8443, '/issuer_only', 'alice'), '200 allow', 'issuer only: alice');
is(get(8443, '/issuer_only', 'alice2'), '403 deny issuer',
	'issuer only: other CA');
is(get(8443, '/issuer_only', 'bob'), '403 deny not_allowed',
	'issuer only: identity rules inherited');

# mtls off in a location, on again in a nested one

is(get(8443, '/off', 'alice'), '200 off', 'off: alice');
is(get(8443, '/off'), '200 off', 'off: no certificate');
is(get(8443, '/off/on', 'alice'), '200 allow', 'nested on: alice');
is(get(8443, '/off/on', 'bob'), '403 deny not_allowed', 'nested on: bob');
is(get(8443, '/off/on'), '403 deny no_cert', 'nested on: no certificate');

# server level mtls_deny_serial and mtls_deny_status

is(get(8444, '/', 'alice'), '200 allow', 'server: alice');
is(get(8444, '/', 'bob'), '401 deny serial_denied', 'server: bob serial');
is(get(8444, '/', 'carol'), '401 deny not_allowed', 'server: carol');

is(get(8444, '/cn', 'bob'), '401 deny serial_denied',
	'cn only: serial inherited');
is(get(8444, '/cn', 'carol'), '200 allow', 'cn only: carol');
is(get(8444, '/cn', 'alice'), '401 deny not_allowed', 'cn only: alice');

is(get(8444, '/serial', 'carol'), '401 deny serial_denied',
	'serial replaced: carol');
is(get(8444, '/serial', 'bob'), '401 deny not_allowed',
	'serial replaced: bob no more');
is(get(8444, '/serial', 'alice'), '200 allow', 'serial replaced: alice');

is(get(8444, '/status', 'bob'), '451 deny serial_denied', 'status replaced');

# mtls off at server level

is(get(8445, '/', 'alice'), '200 off', 'server off: alice');
is(get(8445, '/'), '200 off', 'server off: no certificate');
is(get(8445, '/on', 'alice'), '200 allow', 'server off, on: alice');
is(get(8445, '/on', 'bob'), '403 deny not_allowed', 'server off, on: bob');
is(get(8445, '/on'), '403 deny no_cert', 'server off, on: no certificate');

# server rules replace http rules

is(get(8446, '/', 'carol'), '200 allow', 'server rules: carol');
is(get(8446, '/', 'alice'), '403 deny not_allowed', 'server rules: alice');
is(get(8446, '/issuer', 'carol'), '403 deny issuer', 'server issuer: carol');
is(get(8446, '/issuer', 'alice2'), '403 deny not_allowed',
	'server issuer: server rules inherited');

###############################################################################

sub get {
	my ($port, $uri, $cert) = @_;

	$cert = "$d/$cert" if defined $cert;

	return outcome(https_get(port($port), $uri, $cert));
}

###############################################################################
