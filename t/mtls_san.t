#!/usr/bin/perl

# Tests for the mtls module: mtls_allow_san (dns, email, uri, ip).

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
	->plan(35);

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

        location /dns {
            mtls_allow_san dns:a.example.com;
            try_files /ok =404;
        }

        location /wild {
            mtls_allow_san dns:*.example.com;
            try_files /ok =404;
        }

        location /email {
            mtls_allow_san email:alice@example.com;
            try_files /ok =404;
        }

        location /uri {
            mtls_allow_san uri:https://example.com/alice;
            try_files /ok =404;
        }

        location /ip4 {
            mtls_allow_san ip:192.0.2.10 ip:10.1.0.0/16;
            try_files /ok =404;
        }

        location /ip6 {
            mtls_allow_san ip:2001:db8::1;
            mtls_allow_san ip:2001:db8:1::/48;
            try_files /ok =404;
        }

        location /mixed {
            mtls_allow_san dns:b.example.com email:bob@example.com;
            mtls_allow_cn carol;
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

my %san = (
	dns_a => 'DNS:a.example.com',
	dns_upper => 'DNS:A.Example.COM',
	dns_b => 'DNS:b.example.com',
	dns_star => 'DNS:*.example.com',
	dns_suffix => 'DNS:a.example.com.evil.org',
	dns_ab => 'DNS:a.b.example.com',
	dns_apex => 'DNS:example.com',
	dns_many => 'DNS:x.other.org,DNS:a.example.com',
	dns_as_uri => 'URI:https://a.example.com',
	email_alice => 'email:alice@example.com',
	email_bob => 'email:bob@example.com',
	email_as_dns => 'DNS:alice@example.com',
	uri_alice => 'URI:https://example.com/alice',
	uri_below => 'URI:https://example.com/alice/x',
	uri_case => 'URI:https://example.com/Alice',
	ip4 => 'IP:192.0.2.10',
	ip4_next => 'IP:192.0.2.11',
	ip4_net => 'IP:10.1.200.3',
	ip4_out => 'IP:10.2.0.1',
	ip4_as_dns => 'DNS:192.0.2.10',
	ip6 => 'IP:2001:db8::1',
	ip6_net => 'IP:2001:db8:1:ffff::5',
	ip6_out => 'IP:2001:db8:2::1',
);

$pki->leaf($_, ca => 'ca', subj => "/O=Example/CN=$_", san => $san{$_})
	for sort keys %san;

# no SAN, the name in the subject only

$pki->leaf('cn_dns', ca => 'ca', subj => '/O=Example/CN=a.example.com');
$pki->leaf('dn_email', ca => 'ca',
	subj => '/O=Example/CN=x/emailAddress=alice@example.com');
$pki->leaf('carol', ca => 'ca', subj => '/O=Example/CN=carol');

$pki->self_signed('self', subj => '/O=Example/CN=self',
	san => 'DNS:a.example.com');

$t->write_file('ok', "ok\n");

$t->run();

###############################################################################

# dns: exact, case-insensitive

is(get('/dns', 'dns_a'), '200 allow', 'dns');
is(get('/dns', 'dns_upper'), '200 allow', 'dns: case-insensitive');
is(get('/dns', 'dns_many'), '200 allow', 'dns: second SAN');
is(get('/dns', 'dns_b'), '403 deny not_allowed', 'dns: other name');
is(get('/dns', 'dns_suffix'), '403 deny not_allowed', 'dns: longer name');
is(get('/dns', 'dns_star'), '403 deny not_allowed',
	'dns: certificate wildcard is literal');
is(get('/dns', 'dns_as_uri'), '403 deny not_allowed', 'dns: not in URI');
is(get('/dns', 'cn_dns'), '403 deny not_allowed', 'dns: not from the CN');
is(get('/dns', 'self'), '403 deny unverified', 'dns: self-signed');

# dns: wildcard rule, exactly one leftmost label

is(get('/wild', 'dns_a'), '200 allow', 'wildcard');
is(get('/wild', 'dns_upper'), '200 allow', 'wildcard: case-insensitive');
is(get('/wild', 'dns_ab'), '403 deny not_allowed', 'wildcard: two labels');
is(get('/wild', 'dns_apex'), '403 deny not_allowed', 'wildcard: no label');
is(get('/wild', 'dns_suffix'), '403 deny not_allowed', 'wildcard: suffix');

# email

is(get('/email', 'email_alice'), '200 allow', 'email');
is(get('/email', 'email_bob'), '403 deny not_allowed', 'email: other');
is(get('/email', 'email_as_dns'), '403 deny not_allowed', 'email: as DNS');
is(get('/email', 'dn_email'), '403 deny not_allowed',
	'email: not from the subject');

# uri: exact

is(get('/uri', 'uri_alice'), '200 allow', 'uri');
is(get('/uri', 'uri_below'), '403 deny not_allowed', 'uri: longer');
is(get('/uri', 'uri_case'), '403 deny not_allowed', 'uri: case');

# ip: address and CIDR

is(get('/ip4', 'ip4'), '200 allow', 'ipv4');
is(get('/ip4', 'ip4_next'), '403 deny not_allowed', 'ipv4: other');
is(get('/ip4', 'ip4_net'), '200 allow', 'ipv4: in CIDR');
is(get('/ip4', 'ip4_out'), '403 deny not_allowed', 'ipv4: out of CIDR');
is(get('/ip4', 'ip4_as_dns'), '403 deny not_allowed', 'ipv4: as DNS');
is(get('/ip4', 'ip6'), '403 deny not_allowed', 'ipv4: IPv6 address');

is(get('/ip6', 'ip6'), '200 allow', 'ipv6');
is(get('/ip6', 'ip6_net'), '200 allow', 'ipv6: in CIDR');
is(get('/ip6', 'ip6_out'), '403 deny not_allowed', 'ipv6: out of CIDR');
is(get('/ip6', 'ip4'), '403 deny not_allowed', 'ipv6: IPv4 address');

# several types, and other identity rules OR'ed

is(get('/mixed', 'dns_b'), '200 allow', 'mixed: dns');
is(get('/mixed', 'email_bob'), '200 allow', 'mixed: email');
is(get('/mixed', 'carol'), '200 allow', 'mixed: cn');
is(get('/mixed', 'dns_a'), '403 deny not_allowed', 'mixed: none');

###############################################################################

sub get {
	my ($uri, $cert, $port) = @_;

	$cert = "$d/$cert" if defined $cert && !ref $cert;

	return outcome(https_get(port($port // 8443), $uri, $cert));
}

###############################################################################
