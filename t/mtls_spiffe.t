#!/usr/bin/perl

# Tests for the mtls module: mtls_allow_spiffe and $mtls_spiffe_id.

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
	->plan(24);

$t->write_file_expand('nginx.conf', <<'EOF');

%%TEST_GLOBALS%%

daemon off;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    add_header X-Decision $mtls_decision always;
    add_header X-Reason $mtls_reason always;
    add_header X-Spiffe $mtls_spiffe_id always;

    server {
        listen       127.0.0.1:%%PORT_8443%% ssl;
        server_name  localhost;

        ssl_certificate localhost.crt;
        ssl_certificate_key localhost.key;
        ssl_client_certificate ca.crt;
        ssl_verify_client optional_no_ca;

        location /exact {
            mtls_allow_spiffe spiffe://example.org/ns/prod/sa/web;
            try_files /ok =404;
        }

        location /wild {
            mtls_allow_spiffe spiffe://example.org/ns/*;
            try_files /ok =404;
        }

        location /list {
            mtls_allow_spiffe spiffe://example.org/a spiffe://example.com/ns/*;
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

my $web = 'spiffe://example.org/ns/prod/sa/web';

my %san = (
	web => "URI:$web",
	nsa => 'URI:spiffe://example.org/ns/a',
	nsab => 'URI:spiffe://example.org/ns/a/b',
	ns => 'URI:spiffe://example.org/ns',
	nsx => 'URI:spiffe://example.org/nsx/a',
	otherdom => 'URI:spiffe://example.com/ns/a',
	two => "URI:$web,URI:spiffe://example.org/ns/a",
	two_mixed => "URI:$web,URI:https://example.org/x",
	with_dns => "URI:$web,DNS:web.example.org",
	upper => 'URI:spiffe://Example.org/ns/a',
	query => 'URI:spiffe://example.org/ns/a?x=1',
	trailing => 'URI:spiffe://example.org/ns/a/',
);

$pki->leaf($_, ca => 'ca', subj => "/O=Example/CN=$_", san => $san{$_})
	for sort keys %san;

# a CA certificate is no X.509-SVID leaf, even if it chains to the CA

$pki->leaf('ca_svid', ca => 'ca', subj => '/O=Example/CN=ca_svid',
	san => "URI:$web", ca_flag => 1);

$pki->self_signed('self', subj => '/O=Example/CN=self', san => "URI:$web");

$t->write_file('ok', "ok\n");

$t->run();

###############################################################################

# exact

is(get('/exact', 'web'), '200 allow', 'exact');
is(spiffe('/exact', 'web'), $web, 'exact: $mtls_spiffe_id');
is(get('/exact', 'nsa'), '403 deny not_allowed', 'exact: other');
is(get('/exact', 'with_dns'), '200 allow', 'exact: with a DNS SAN');
is(get('/exact', 'self'), '403 deny unverified', 'exact: self-signed');
is(spiffe('/exact', 'self'), '', 'self-signed: no $mtls_spiffe_id');

# path prefix, segment-wise

is(get('/wild', 'web'), '200 allow', 'wildcard: deep');
is(get('/wild', 'nsa'), '200 allow', 'wildcard: one segment');
is(get('/wild', 'nsab'), '200 allow', 'wildcard: two segments');
is(spiffe('/wild', 'nsab'), 'spiffe://example.org/ns/a/b',
	'wildcard: $mtls_spiffe_id');
is(get('/wild', 'ns'), '403 deny not_allowed', 'wildcard: the prefix itself');
is(get('/wild', 'nsx'), '403 deny not_allowed', 'wildcard: not segment-wise');
is(get('/wild', 'otherdom'), '403 deny not_allowed',
	'wildcard: other trust domain');
is(get('/list', 'otherdom'), '200 allow', 'list: second pattern');

# not a valid X.509-SVID

is(get('/exact', 'two'), '403 deny not_allowed', 'two URIs: exact');
is(get('/wild', 'two'), '403 deny not_allowed', 'two URIs: wildcard');
is(spiffe('/wild', 'two'), '', 'two URIs: no $mtls_spiffe_id');
is(get('/exact', 'two_mixed'), '403 deny not_allowed',
	'two URIs, one not SPIFFE');
is(get('/exact', 'ca_svid'), '403 deny not_allowed', 'CA certificate');
is(spiffe('/exact', 'ca_svid'), '', 'CA certificate: no $mtls_spiffe_id');

# not a valid SPIFFE ID

is(get('/wild', 'upper'), '403 deny not_allowed', 'upper-case trust domain');
is(spiffe('/wild', 'upper'), '', 'upper-case: no $mtls_spiffe_id');
is(get('/wild', 'query'), '403 deny not_allowed', 'query');
is(get('/wild', 'trailing'), '403 deny not_allowed', 'trailing slash');

###############################################################################

sub get {
	my ($uri, $cert) = @_;
	return outcome(https_get(port(8443), $uri, "$d/$cert"));
}

sub spiffe {
	my ($uri, $cert) = @_;
	return header(https_get(port(8443), $uri, "$d/$cert"), 'X-Spiffe');
}

###############################################################################
