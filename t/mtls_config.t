#!/usr/bin/perl

# Tests for the mtls module: configuration errors found by "nginx -t".

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
	->plan(32);

my $d = $t->testdir();
my $pki = Mtls::PKI->new($d);

$pki->ca('ca', subj => '/O=Example/CN=Test CA');
$pki->leaf('localhost', ca => 'ca', subj => '/CN=localhost',
	san => 'DNS:localhost', eku => 'serverAuth');
$pki->leaf('alice', ca => 'ca', subj => '/O=Example/CN=alice',
	serial => '0x3001');

my $fp = der_fingerprint_sha256("$d/alice.crt");
(my $fp_colons = uc $fp) =~ s/(..)(?=.)/$1:/g;

# a configuration with a place for a directive at each level

my $template = <<'EOF';

%%TEST_GLOBALS%%

daemon off;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    __HTTP__

    server {
        listen       127.0.0.1:%%PORT_8443%% ssl;
        server_name  localhost;

        ssl_certificate localhost.crt;
        ssl_certificate_key localhost.key;
        ssl_client_certificate ca.crt;
        __VERIFY__

        __SERVER__

        location / {
            __LOCATION__
        }
    }
}

EOF

###############################################################################

# invalid values: [ level, directive line, directive name, the bad value ]

my @invalid = (
	[ 'location', 'mtls_allow_dn "CN=alice,,";', 'mtls_allow_dn',
		'CN=alice,,' ],
	[ 'http', 'mtls_allow_dn "FOO=bar";', 'mtls_allow_dn', 'FOO=bar' ],
	[ 'location', 'mtls_issuer "CN";', 'mtls_issuer', 'CN' ],
	[ 'server', 'mtls_deny_serial 12XZ;', 'mtls_deny_serial', '12XZ' ],
	[ 'location', 'mtls_allow_fingerprint sha256:abc;',
		'mtls_allow_fingerprint', 'sha256:abc' ],
	[ 'location',
		'mtls_allow_fingerprint md5:d41d8cd98f00b204e9800998ecf8427e;',
		'mtls_allow_fingerprint', 'md5:d41d8cd98f00b204e9800998ecf8427e' ],
	[ 'location', "mtls_allow_fingerprint sha256:$fp sha256:" . 'g' x 64 . ';',
		'mtls_allow_fingerprint', 'sha256:' . 'g' x 64 ],
	[ 'location', 'mtls_allow_san foo:bar;', 'mtls_allow_san', 'foo:bar' ],
	[ 'location', 'mtls_allow_san ip:300.1.1.1;', 'mtls_allow_san',
		'ip:300.1.1.1' ],
	[ 'location', 'mtls_allow_san ip:10.0.0.0/33;', 'mtls_allow_san',
		'ip:10.0.0.0/33' ],
	[ 'location', 'mtls_allow_san ip:2001:db8::/129;', 'mtls_allow_san',
		'ip:2001:db8::/129' ],
	[ 'location', 'mtls_allow_san dns:a.example.com ip:1.2.3;',
		'mtls_allow_san', 'ip:1.2.3' ],
	[ 'location', 'mtls_allow_spiffe http://x/y;', 'mtls_allow_spiffe',
		'http://x/y' ],
	[ 'location', 'mtls_allow_spiffe spiffe://Example.org/a;',
		'mtls_allow_spiffe', 'spiffe://Example.org/a' ],
	[ 'location', 'mtls_allow_spiffe spiffe://example.org:8080/a;',
		'mtls_allow_spiffe', 'spiffe://example.org:8080/a' ],
	[ 'location', 'mtls_allow_spiffe spiffe://example.org/a/../b;',
		'mtls_allow_spiffe', 'spiffe://example.org/a/../b' ],
	[ 'location', 'mtls_allow_spiffe spiffe://example.org/a//b;',
		'mtls_allow_spiffe', 'spiffe://example.org/a//b' ],
	[ 'location', 'mtls_allow_spiffe spiffe://example.org/a?x;',
		'mtls_allow_spiffe', 'spiffe://example.org/a?x' ],
	[ 'location', 'mtls_deny_status 200;', 'mtls_deny_status', '200' ],
	[ 'server', 'mtls_deny_status 600;', 'mtls_deny_status', '600' ],
	[ 'location', "mtls_allow_cn \"a\tb\";", 'mtls_allow_cn', "a\tb" ],
);

my $n = 0;

for my $case (@invalid) {
	my ($level, $line, $name, $value) = @$case;

	my $file = 'invalid' . ++$n . '.conf';
	my $out = nginx_t($t, conf($level => $line), $file);
	my $at = "$d/$file:" . conf_line($t, $file, $line);

	like($out, qr/\[emerg\] "\Q$name\E" directive has invalid value "\Q$value\E"(?:: [^\n]+)? in \Q$at\E$/m,
		"$name $value");
}

# "mtls" is an on/off flag read by nginx's own flag setter, in nginx's words

{
	my $out = nginx_t($t, conf(location => 'mtls maybe;'), 'flag.conf');
	my $at = "$d/flag.conf:" . conf_line($t, 'flag.conf', 'mtls maybe;');
	like($out, qr/\[emerg\] invalid value "maybe" in "mtls" directive, it must be "on" or "off" in \Q$at\E$/m,
		'mtls maybe');
}

# duplicates

my $out = nginx_t($t, conf(location => "mtls on;\n            mtls off;"),
	'dup1.conf');
my $at = "$d/dup1.conf:" . conf_line($t, 'dup1.conf', 'mtls off;');

like($out, qr/\[emerg\] "mtls" directive is duplicate in \Q$at\E$/m,
	'mtls duplicate');

$out = nginx_t($t, conf(server =>
	"mtls_deny_status 401;\n        mtls_deny_status 402;"), 'dup2.conf');
$at = "$d/dup2.conf:" . conf_line($t, 'dup2.conf', 'mtls_deny_status 402;');

like($out, qr/\[emerg\] "mtls_deny_status" directive is duplicate in \Q$at\E$/m,
	'mtls_deny_status duplicate');

# rules in a server without ssl_verify_client

$out = nginx_t($t, conf(verify => '', location => 'mtls_allow_cn alice;'),
	'noverify1.conf');
$at = "$d/noverify1.conf:" . conf_line($t, 'noverify1.conf', 'server {');

like($out, qr/\[emerg\] [^\n]*ssl_verify_client[^\n]*\Q$at\E\b/,
	'no ssl_verify_client, location rules');

$out = nginx_t($t, conf(verify => '', server => 'mtls_allow_san dns:a.example.com;'),
	'noverify2.conf');
$at = "$d/noverify2.conf:" . conf_line($t, 'noverify2.conf', 'server {');

like($out, qr/\[emerg\] [^\n]*ssl_verify_client[^\n]*\Q$at\E\b/,
	'no ssl_verify_client, server rules');

# the module's directives in a valid configuration

my $valid = <<'EOF';

%%TEST_GLOBALS%%

daemon off;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    add_header X-Decision $mtls_decision always;
    add_header X-Reason $mtls_reason always;

    mtls_deny_status 400;

    server {
        listen       127.0.0.1:%%PORT_8443%% ssl;
        server_name  localhost;

        ssl_certificate localhost.crt;
        ssl_certificate_key localhost.key;
        ssl_client_certificate ca.crt;
        ssl_verify_client optional_no_ca;

        mtls on;
        mtls_deny_status 599;

        location / {
            mtls_allow_cn alice "bob smith";
            mtls_allow_dn "CN=alice,OU=ops,O=Example,C=US";
            mtls_allow_dn "CN=a\2Cb+UID=42,O=Example";
            mtls_allow_san dns:a.example.com dns:*.example.com
                           email:alice@example.com uri:https://example.com/x
                           ip:192.0.2.1 ip:10.0.0.0/8
                           ip:2001:db8::1 ip:2001:db8::/32;
            mtls_allow_spiffe spiffe://example.org/ns/prod/sa/web
                              spiffe://example.org/ns/*;
            mtls_allow_fingerprint sha256:__FP__ sha256:__FP_COLONS__;
            mtls_issuer "CN=Test CA,O=Example" "CN=Other CA,O=Example";
            mtls_deny_serial 10:02 0FFF 00ab;
            mtls_deny_status 401;
            try_files /ok =404;
        }

        location /off {
            mtls off;
            try_files /ok =404;
        }

        location /fp {
            mtls_allow_fingerprint sha256:__FP_COLONS__;
            try_files /ok =404;
        }
    }
}

EOF

$valid =~ s/__FP__/$fp/g;
$valid =~ s/__FP_COLONS__/$fp_colons/g;

$out = nginx_t($t, $valid, 'valid.conf');

like($out, qr/syntax is ok/, 'valid: syntax is ok');
like($out, qr/test is successful/, 'valid: test is successful');

# and it works

$t->write_file_expand('nginx.conf', $valid);
$t->write_file('ok', "ok\n");

$t->run();

is(get('/', 'alice'), '200 allow', 'valid: allowed');
is(get('/'), '401 deny no_cert', 'valid: deny status');
is(get('/off'), '200 off', 'valid: off');
is(get('/fp', 'alice'), '200 allow', 'valid: fingerprint with colons');

###############################################################################

# the template with directives put at levels; "verify" replaces the
# ssl_verify_client line

sub conf {
	my (%at) = @_;

	my $conf = $template;

	$at{verify} //= 'ssl_verify_client optional_no_ca;';

	$conf =~ s/__HTTP__/$at{http} \/\/ ''/e;
	$conf =~ s/__VERIFY__/$at{verify}/;
	$conf =~ s/__SERVER__/$at{server} \/\/ ''/e;
	$conf =~ s/__LOCATION__/$at{location} \/\/ ''/e;

	return $conf;
}

sub get {
	my ($uri, $cert) = @_;

	$cert = "$d/$cert" if defined $cert;

	return outcome(https_get(port(8443), $uri, $cert));
}

###############################################################################
