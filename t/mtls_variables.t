#!/usr/bin/perl

# Tests for the mtls module: variables.

###############################################################################

use warnings;
use strict;

use Test::More;

BEGIN { use FindBin; chdir($FindBin::Bin); }

use Test::Nginx;
use Mtls;

use POSIX qw/strftime/;

###############################################################################

select STDERR; $| = 1;
select STDOUT; $| = 1;

my $t = Test::Nginx->new()->has(qw/http http_ssl/)->has_daemon('openssl')
	->plan(39);

$t->write_file_expand('nginx.conf', <<'EOF');

%%TEST_GLOBALS%%

daemon off;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    add_header X-Decision $mtls_decision always;
    add_header X-Reason $mtls_reason always;

    add_header X-Subject $mtls_subject always;
    add_header X-Issuer $mtls_issuer always;
    add_header X-CN $mtls_cn always;
    add_header X-Serial $mtls_serial always;
    add_header X-FP $mtls_fingerprint always;
    add_header X-SAN-DNS $mtls_san_dns always;
    add_header X-SAN-Email $mtls_san_email always;
    add_header X-SAN-URI $mtls_san_uri always;
    add_header X-SAN-IP $mtls_san_ip always;
    add_header X-Spiffe $mtls_spiffe_id always;
    add_header X-Not-After $mtls_not_after always;
    add_header X-Expires-In $mtls_expires_in always;

    add_header X-Ngx-Subject $ssl_client_s_dn always;
    add_header X-Ngx-Issuer $ssl_client_i_dn always;
    add_header X-Ngx-Serial $ssl_client_serial always;

    server {
        listen       127.0.0.1:%%PORT_8443%% ssl;
        server_name  localhost;

        ssl_certificate localhost.crt;
        ssl_certificate_key localhost.key;
        ssl_client_certificate ca.crt;
        ssl_verify_client optional_no_ca;

        location /on {
            mtls on;
            try_files /ok =404;
        }

        location /deny {
            mtls_allow_cn nobody;
            try_files /ok =404;
        }

        location /off {
            mtls off;
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

my $san = 'DNS:a.example.com,DNS:b.example.com,email:alice@example.com,'
	. 'URI:spiffe://example.org/ns/prod/sa/web,IP:192.0.2.1,IP:2001:db8::1';

$pki->leaf('full', ca => 'ca', subj => '/C=US/O=Example/OU=ops/CN=alice',
	san => $san, serial => '0x1A2B3C', enddate => '20300131120000Z');
$pki->leaf('bob', ca => 'ca', subj => '/O=Example/CN=bob', days => 30);
$pki->leaf('two', ca => 'ca', subj => '/O=Example/CN=alice/CN=bob');
$pki->leaf('comma', ca => 'ca', subj => '/O=Example/CN=a,b');
$pki->self_signed('self', subj => '/C=US/O=Example/OU=ops/CN=alice',
	san => $san);

# control characters in the CN, re-signed so that the certificates verify

$pki->leaf('pre_crlf', ca => 'ca', subj => '/O=Example/CN=evil__X-Injected: yes');
$pki->patch('crlf', from => 'pre_crlf', replace => [ '__' => "\x0d\x0a" ]);
$pki->leaf('pre_nul', ca => 'ca', subj => '/O=Example/CN=aliceXevil');
$pki->patch('nul', from => 'pre_nul', replace => [ 'aliceXevil' => "alice\0evil" ]);
$pki->leaf('pre_ctl', ca => 'ca', subj => '/O=Example/CN=ctlTABxDELx');
$pki->patch('ctl', from => 'pre_ctl',
	replace => [ 'TAB' => "a\x09b", 'DEL' => "c\x7fd" ]);

$t->write_file('ok', "ok\n");

$t->run();

###############################################################################

my @identity = qw/X-Subject X-Issuer X-CN X-Serial X-FP X-SAN-DNS X-SAN-Email
	X-SAN-URI X-SAN-IP X-Spiffe X-Not-After X-Expires-In/;

# a verified certificate

my $before = time();
my $r = get('/on', 'full');
my $after = time();

is(outcome($r), '200 allow', 'full: allowed');
is(header($r, 'X-Subject'), 'CN=alice,OU=ops,O=Example,C=US', 'subject');
is(header($r, 'X-Subject'), header($r, 'X-Ngx-Subject'),
	'subject as $ssl_client_s_dn');
is(header($r, 'X-Issuer'), 'CN=Test CA,O=Example', 'issuer');
is(header($r, 'X-Issuer'), header($r, 'X-Ngx-Issuer'),
	'issuer as $ssl_client_i_dn');
is(header($r, 'X-CN'), 'alice', 'cn');
is(header($r, 'X-Serial'), '1A2B3C', 'serial');
is(header($r, 'X-Serial'), header($r, 'X-Ngx-Serial'),
	'serial as $ssl_client_serial');
is(header($r, 'X-FP'), der_fingerprint_sha256("$d/full.crt"), 'fingerprint');
is(header($r, 'X-SAN-DNS'), 'a.example.com b.example.com', 'san dns');
is(header($r, 'X-SAN-Email'), 'alice@example.com', 'san email');
is(header($r, 'X-SAN-URI'), 'spiffe://example.org/ns/prod/sa/web', 'san uri');
is(header($r, 'X-SAN-IP'), '192.0.2.1 2001:db8::1', 'san ip');
is(header($r, 'X-Spiffe'), 'spiffe://example.org/ns/prod/sa/web', 'spiffe id');
is(header($r, 'X-Not-After'), '2030-01-31T12:00:00Z', 'not after');

my $na = not_after_epoch("$d/full.crt");

is(header($r, 'X-Not-After'), strftime('%Y-%m-%dT%H:%M:%SZ', gmtime($na)),
	'not after as openssl x509 -enddate');
ok(expires_ok(header($r, 'X-Expires-In'), $na, $before, $after),
	'expires in');

# x509 -days

$before = time();
$r = get('/on', 'bob');
$after = time();

my $bob_na = not_after_epoch("$d/bob.crt");

is(header($r, 'X-Not-After'), strftime('%Y-%m-%dT%H:%M:%SZ', gmtime($bob_na)),
	'not after, 30 days');
ok(expires_ok(header($r, 'X-Expires-In'), $bob_na, $before, $after),
	'expires in, 30 days');

# denied, but verified: the identity is known

$r = get('/deny', 'full');

is(outcome($r), '403 deny not_allowed', 'denied');
is(header($r, 'X-CN'), 'alice', 'denied: cn');

# two CNs: no single CN

$r = get('/on', 'two');

is(header($r, 'X-CN'), '', 'two CNs: empty cn');
is(header($r, 'X-Subject'), header($r, 'X-Ngx-Subject'), 'two CNs: subject');

# escaping

$r = get('/on', 'comma');

is(header($r, 'X-CN'), 'a\,b', 'cn escaped');
is(header($r, 'X-Subject'), header($r, 'X-Ngx-Subject'), 'subject escaped');

# an unverified certificate leaks nothing, whatever the location says

$r = get('/on', 'self');

is(outcome($r), '403 deny unverified', 'unverified');
is(header($r, 'X-Ngx-Subject'), 'CN=alice,OU=ops,O=Example,C=US',
	'unverified: nginx shows the subject');
is(identity($r), empty(), 'unverified: identity variables empty');

$r = get('/off', 'self');

is(outcome($r), '200 off', 'unverified, off');
is(identity($r), empty(), 'unverified, off: identity variables empty');

# control characters never reach the response

$r = get('/on', 'crlf');

is(outcome($r), '200 allow', 'CR LF: allowed');
unlike(raw_headers($r), qr/^X-Injected/mi, 'CR LF: no header injected');
ok(clean_headers($r), 'CR LF: header lines clean');
like(header($r, 'X-CN'), qr/^evil\\0[dD]\\0[aA]X-Injected: yes$/,
	'CR LF: cn escaped');
like(header($r, 'X-Subject'), qr/^CN=evil\\0[dD]\\0[aA]X-Injected: yes,O=Example$/,
	'CR LF: subject escaped');

$r = get('/on', 'nul');

is(header($r, 'X-CN'), 'alice\00evil', 'NUL: cn');
is(header($r, 'X-Subject'), 'CN=alice\00evil,O=Example', 'NUL: subject');
ok(defined $r && $r !~ /\x00/, 'NUL: no NUL byte in response');

$r = get('/on', 'ctl');

ok(defined $r && clean_headers($r) && header($r, 'X-CN') =~ /^ctla.+b.+x$/,
	'TAB, DEL: cn without control characters');

###############################################################################

sub get {
	my ($uri, $cert) = @_;
	return https_get(port(8443), $uri, "$d/$cert");
}

sub identity {
	my ($r) = @_;
	return join '|', map { "$_=" . (header($r, $_) // 'no response') }
		@identity;
}

sub empty {
	return join '|', map { "$_=" } @identity;
}

# every header line printable ASCII only, lines ended by CR LF

sub clean_headers {
	my ($r) = @_;

	my $h = raw_headers($r);
	return 0 unless defined $h;

	for my $line (split /\x0d\x0a/, $h) {
		if ($line !~ /^[\x20-\x7e]*\z/) {
			(my $shown = $line) =~ s/([^\x20-\x7e])/sprintf('\\x%02x', ord $1)/ge;
			diag("bad header line: $shown");
			return 0;
		}
	}

	return 1;
}

sub expires_ok {
	my ($v, $na, $before, $after) = @_;

	unless (defined $v && $v =~ /^-?\d+\z/) {
		diag('expires in: ' . ($v // 'undef'));
		return 0;
	}

	return 1 if $v >= $na - $after - 2 && $v <= $na - $before + 2;

	diag("expires in: $v, expected " . ($na - $after) . '..'
		. ($na - $before));
	return 0;
}

###############################################################################
