#!/usr/bin/perl

# Tests for the mtls module: no silent bypass. A response the rewrite phase
# makes before the access phase runs ("return", "if (...) { return ...; }",
# "rewrite ... redirect") is decided all the same, by the location that
# answers: after "rewrite ... last", the new one.

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

my $t = Test::Nginx->new()->has(qw/http http_ssl rewrite/)
	->has_daemon('openssl')->plan(32);

$t->write_file_expand('nginx.conf', <<'EOF');

%%TEST_GLOBALS%%

daemon off;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    add_header X-Decision $mtls_decision always;
    add_header X-Reason $mtls_reason always;

    ssl_certificate localhost.crt;
    ssl_certificate_key localhost.key;
    ssl_client_certificate ca.crt;
    ssl_verify_client optional_no_ca;

    server {
        listen       127.0.0.1:%%PORT_8443%% ssl http2;
        server_name  localhost;

        # read before any location is found: must not decide for one
        set $early $mtls_decision;

        location /api/ {
            mtls_allow_cn alice;
            return 200 "api\n";
        }

        location /if/ {
            mtls_allow_cn alice;
            if ($arg_x) {
                return 200 "if\n";
            }
            try_files /ok =404;
        }

        location /old/ {
            mtls_allow_cn alice;
            rewrite ^/old/(.*)$ /public/$1 last;
        }

        location /public/ {
            mtls off;
            return 200 "public\n";
        }

        location /moved/ {
            mtls off;
            rewrite ^ /api/ last;
        }

        location /redirect/ {
            mtls_allow_cn alice;
            rewrite ^ https://example.com/ redirect;
        }

        location /gone/ {
            mtls_allow_cn alice;
            return 404;
        }

        location /close/ {
            mtls_allow_cn alice;
            mtls_deny_status 444;
            return 200 "close\n";
        }

        location /status/ {
            mtls_allow_cn alice;
            mtls_deny_status 401;
            return 200 "status\n";
        }

        location /admin/ {
            mtls_allow_cn alice;
            try_files /ok =404;
        }
    }

    server {
        listen       127.0.0.1:%%PORT_8444%% ssl;
        server_name  localhost;

        mtls_allow_cn alice;

        location / {
            error_page 403 = @denied;
            try_files /ok =404;
        }

        location @denied {
            return 200 "custom denial page\n";
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

# "return" in the location

is(get('/api/x', 'alice'), '200 allow', 'return: alice');
like(body('/api/x', 'alice'), qr/^api$/m, 'return: alice gets the body');
is(get('/api/x', 'bob'), '403 deny not_allowed', 'return: bob denied');
unlike(body('/api/x', 'bob'), qr/^api$/m, 'return: bob gets no body');
is(get('/api/x'), '403 deny no_cert', 'return: no certificate');
like($t->read_file('error.log'),
	qr/\[error\].*access forbidden by mtls: not_allowed, subject: "CN=bob.*GET \/api\/x/,
	'return: denial logged');

# "if (...) { return ...; }"

is(get('/if/?x=1', 'alice'), '200 allow', 'if: alice');
is(get('/if/?x=1', 'bob'), '403 deny not_allowed', 'if: bob denied');
is(get('/if/', 'bob'), '403 deny not_allowed', 'if: not taken, access phase');

# "rewrite ... last": the new location decides

is(get('/old/a', 'bob'), '200 off', 'rewrite last: to an mtls off location');
like(body('/old/a', 'bob'), qr/^public$/m, 'rewrite last: its body');
is(get('/moved/a', 'bob'), '403 deny not_allowed',
	'rewrite last: from mtls off to a protected return');
is(get('/moved/a', 'alice'), '200 allow', 'rewrite last: alice');

# "rewrite ... redirect"

is(get('/redirect/', 'alice'), '302 allow', 'redirect: alice');
is(get('/redirect/', 'bob'), '403 deny not_allowed', 'redirect: bob denied');
unlike(raw('/redirect/', 'bob'), qr/example\.com/, 'redirect: no location');

# an error status is left as it is

is(get('/gone/', 'bob'), '404 deny not_allowed', 'return 404: left');

# the deny status

is(get('/close/', 'alice'), '200 allow', 'status 444: alice');
is(get('/close/', 'bob'), 'no response', 'status 444: connection closed');
is(get('/status/', 'bob'), '401 deny not_allowed', 'status 401');

# a variable read before the location is found decides nothing there

is(get('/admin/', 'bob'), '403 deny not_allowed', 'early variable: denied');
is(get('/admin/', 'alice'), '200 allow', 'early variable: allowed');

# an error page made by "return" is served

is(get2('/x', 'bob'), '200 deny not_allowed', 'error_page: denied');
like(body2('/x', 'bob'), qr/custom denial page/, 'error_page: its body');
is(get2('/x', 'alice'), '200 allow', 'error_page: alice');

# HTTP/2

SKIP: {
	my $h2 = Mtls::H2->new(port => port(8443), cert => "$d/bob");
	skip 'no HTTP/2', 3 unless $h2;

	my $r = $h2->get('/api/x');
	is($r && $r->{status}, 403, 'http2: bob denied');
	is($r && $r->{headers}{'x-reason'}, 'not_allowed', 'http2: reason');

	$h2 = Mtls::H2->new(port => port(8443), cert => "$d/alice");
	$r = $h2 && $h2->get('/api/x');
	is($r && $r->{status}, 200, 'http2: alice');
}

# keep-alive: a denial made here closes the connection after the answer

my $ka = Mtls::KeepAlive->new(port => port(8443), cert => "$d/alice");
is(Mtls::outcome($ka && $ka->get('/api/x')), '200 allow', 'keep-alive: alice');
is(Mtls::outcome($ka && $ka->get('/api/y')), '200 allow',
	'keep-alive: alice again');

$ka = Mtls::KeepAlive->new(port => port(8443), cert => "$d/bob");
is(Mtls::outcome($ka && $ka->get('/api/x')), '403 deny not_allowed',
	'keep-alive: bob denied');
is(Mtls::outcome($ka && $ka->get('/admin/')), 'no response',
	'keep-alive: then the connection is closed');

###############################################################################

sub raw {
	my ($uri, $cert, $port) = @_;
	return Mtls::https_get(port($port // 8443), $uri,
		defined $cert ? "$d/$cert" : undef);
}

sub get { Mtls::outcome(raw(@_)) }
sub body { my $r = raw(@_) // ''; $r =~ s/^.*?\r\n\r\n//s; $r }
sub get2 { get(@_, 8444) }
sub body2 { body(@_, 8444) }

###############################################################################
