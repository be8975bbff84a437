#!/usr/bin/perl

# Tests for the mtls module: client certificates at the edges.  Subjects in
# BMPString, UniversalString, TeletexString and NumericString, multi-valued
# RDNs (one out of DER order), an empty subject, a negative serial, a
# subject of 64 KB, 5,000 SANs, a chain of 8 intermediates with a CRL for
# every level; and one certificate too big for the handshake.  Each either
# works as documented or is refused, and nginx stays up.

###############################################################################

use warnings;
use strict;

use Test::More;

use Encode qw/encode/;

BEGIN { use FindBin; chdir($FindBin::Bin); }

use Test::Nginx;
use Mtls;

###############################################################################

select STDERR; $| = 1;
select STDOUT; $| = 1;

my $t = Test::Nginx->new()->has(qw/http http_ssl/)->has_daemon('openssl')
	->plan(73);

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
    add_header X-CN $mtls_cn always;
    add_header X-Ngx-DN $ssl_client_s_dn always;
    add_header X-Verify $ssl_client_verify always;
    add_header X-SAN-DNS $mtls_san_dns always;
    add_header X-Serial $mtls_serial always;
    add_header X-Ngx-Serial $ssl_client_serial always;
    add_header X-Reused $ssl_session_reused always;

    ssl_certificate localhost.crt;
    ssl_certificate_key localhost.key;

    server {
        listen       127.0.0.1:%%PORT_8443%% ssl;
        server_name  localhost;

        ssl_client_certificate ca.crt;
        ssl_verify_client optional_no_ca;

        # OpenSSL 3.0 cannot put a client certificate of more than 64 KB
        # in a session ticket: with tickets on (nginx's default), such a
        # handshake fails with "[crit] ... internal error"
        ssl_session_tickets off;

        location /any {
            mtls on;
            try_files /ok =404;
        }

        location /zoe {
            mtls_allow_cn "Zoë";
            try_files /ok =404;
        }

        location /zoe_dn {
            mtls_allow_dn "CN=Zoë,O=Example";
            try_files /ok =404;
        }

        location /zoe_dn_hex {
            mtls_allow_dn "CN=Zo\C3\AB,O=Example";
            try_files /ok =404;
        }

        location /smile {
            mtls_allow_cn "😀";
            try_files /ok =404;
        }

        location /mv {
            mtls_allow_dn "CN=alice+UID=42+OU=ops,O=Example";
            try_files /ok =404;
        }

        location /alice {
            mtls_allow_cn alice;
            try_files /ok =404;
        }

        location /num {
            mtls_allow_cn 123;
            try_files /ok =404;
        }

        location /mv2 {
            mtls_allow_dn "CN=ab+OU=cd,O=Example";
            try_files /ok =404;
        }

        location /empty {
            mtls_allow_san dns:e.example;
            try_files /ok =404;
        }

        location /neg {
            mtls_deny_serial 8001;
            mtls on;
            try_files /ok =404;
        }

        location /big {
            mtls_allow_cn big;
            try_files /ok =404;
        }

        location /san_last {
            mtls_allow_san dns:s5000.example;
            try_files /ok =404;
        }

        location /san_first {
            mtls_allow_san dns:S1.EXAMPLE;
            try_files /ok =404;
        }

        location /san_wild {
            mtls_allow_san dns:*.example;
            try_files /ok =404;
        }

        location /san_none {
            mtls_allow_san dns:s5001.example email:s5000@example;
            try_files /ok =404;
        }
    }

    # 8 intermediates: ssl_verify_depth counts them, not the leaf nor the root

    server {
        listen       127.0.0.1:%%PORT_8444%% ssl;
        server_name  localhost;

        ssl_client_certificate ca.crt;
        ssl_verify_client on;
        ssl_verify_depth 8;

        location / {
            mtls_allow_cn deep;
            try_files /ok =404;
        }
    }

    server {
        listen       127.0.0.1:%%PORT_8445%% ssl;
        server_name  localhost;

        ssl_client_certificate ca.crt;
        ssl_verify_client on;
        ssl_verify_depth 7;

        location / {
            mtls on;
            try_files /ok =404;
        }
    }

    # a CRL for every CA of the chain, none revokes anything

    server {
        listen       127.0.0.1:%%PORT_8446%% ssl;
        server_name  localhost;

        ssl_client_certificate ca.crt;
        ssl_trusted_certificate ints.crt;
        ssl_verify_client on;
        ssl_verify_depth 8;

        mtls_crl crl-all.pem;

        location / {
            mtls_allow_cn deep;
            try_files /ok =404;
        }
    }

    # int3 revokes int4

    server {
        listen       127.0.0.1:%%PORT_8447%% ssl;
        server_name  localhost;

        ssl_client_certificate ca.crt;
        ssl_trusted_certificate ints.crt;
        ssl_verify_client on;
        ssl_verify_depth 8;

        mtls_crl crl-revoked.pem;

        location / {
            mtls_allow_cn deep;
            try_files /ok =404;
        }

        location /leaf {
            mtls_crl_check leaf;
            mtls_allow_cn deep;
            try_files /ok =404;
        }
    }

    # no CRL of int5

    server {
        listen       127.0.0.1:%%PORT_8448%% ssl;
        server_name  localhost;

        ssl_client_certificate ca.crt;
        ssl_trusted_certificate ints.crt;
        ssl_verify_client on;
        ssl_verify_depth 8;

        mtls_crl crl-gap.pem;

        location / {
            mtls_allow_cn deep;
            try_files /ok =404;
        }

        location /leaf {
            mtls_crl_check leaf;
            mtls_allow_cn deep;
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

# string types: each made as a UTF8String placeholder of the right length,
# then retagged and re-signed

sub retype {
	my ($name, $tag, $content) = @_;

	my $len = length $content;
	my $placeholder = 'Q' x $len;

	$pki->leaf("pre_$name", ca => 'ca', subj => "/O=Example/CN=$placeholder");
	$pki->patch($name, from => "pre_$name", replace => [
		"\x0c" . chr($len) . $placeholder => chr($tag) . chr($len) . $content
	]);
}

retype('bmp', 0x1e, encode('UTF-16BE', "Zo\x{eb}"));
retype('universal', 0x1c, encode('UTF-32BE', "Zo\x{eb}"));
retype('teletex', 0x14, "Zo\xeb");
retype('universal_smile', 0x1c, encode('UTF-32BE', "\x{1f600}"));

# TeletexString as OpenSSL itself chooses it for a Latin-1 name
$pki->leaf('t61', ca => 'ca', subj => "/O=Example/CN=Zo\xeb",
	string_mask => 'default');
$pki->leaf('utf8', ca => 'ca', subj => "/O=Example/CN=Zo\xeb");

# multi-valued RDNs

$pki->leaf('mv', ca => 'ca', subj => '/O=Example/CN=alice+UID=42+OU=ops');
$pki->leaf('mv_cn', ca => 'ca', subj => '/O=Example/CN=alice+CN=bob');
$pki->leaf('mv_one', ca => 'ca', subj => '/O=Example+CN=alice');

# a NumericString, not canonicalized by OpenSSL
$pki->patch('num', from => 'pre_teletex',
	replace => [ "\x0c\x03QQQ" => "\x12\x03123" ]);

# a multi-valued RDN whose SET OF is not in DER order (OpenSSL takes it)

$pki->leaf('pre_mv2', ca => 'ca', subj => '/O=Example/CN=ab+OU=cd');
{
	my $cn = "\x30\x09\x06\x03\x55\x04\x03\x0c\x02ab";
	my $ou = "\x30\x09\x06\x03\x55\x04\x0b\x0c\x02cd";
	$pki->patch('mv2', from => 'pre_mv2',
		replace => [ $cn . $ou => $ou . $cn ]);
}

# an empty subject, the name in a critical SAN (RFC 5280 4.1.2.6)
$pki->leaf('empty', ca => 'ca', subj => '/', san => 'critical,DNS:e.example');

# a negative serial (RFC 5280 forbids them, OpenSSL takes them)
$pki->leaf('pre_neg', ca => 'ca', subj => '/O=Example/CN=neg',
	serial => '0x7A01');
$pki->patch('neg', from => 'pre_neg',
	replace => [ "\x02\x02\x7a\x01" => "\x02\x02\x80\x01" ]);

# a subject of ~64 KB: 1,000 OUs of 60 characters; and one of ~128 KB, more
# than OpenSSL accepts in a handshake by default (100 KB)

sub many_ous {
	my ($n) = @_;
	return join '', map { sprintf('/OU=%056d-%03d', 0, $_ % 1000) } 1 .. $n;
}

$pki->leaf('big', ca => 'ca', subj => '/O=Example' . many_ous(1000) . '/CN=big');
$pki->leaf('huge', ca => 'ca', subj => '/O=Example' . many_ous(2000) . '/CN=big');

# 5,000 DNS SANs

my $sans = join ',', map { "DNS:s$_.example" } 1 .. 5000;
$pki->leaf('sans', ca => 'ca', subj => '/O=Example/CN=sans', san => $sans);

# a chain of 8 intermediates, and a CRL from every CA of it

my @ints = map { "int$_" } 1 .. 8;
my $parent = 'ca';
for my $int (@ints) {
	$pki->ca($int, ca => $parent, subj => "/O=Example/CN=$int");
	$parent = $int;
}
$pki->leaf('deep', ca => 'int8', subj => '/O=Example/CN=deep');

$t->write_file('ints.crt', join '', map { $t->read_file("$_.crt") } @ints);

my %crl = map { $_ => Mtls::slurp($pki->crl("crl-$_", ca => $_)) }
	'ca', @ints;
my $revoking = Mtls::slurp($pki->crl('crl-int3-revoking', ca => 'int3',
	revoke => [ 'int4' ]));

$t->write_file('crl-all.pem', join '', map { $crl{$_} } 'ca', @ints);
$t->write_file('crl-revoked.pem',
	join '', map { $_ eq 'int3' ? $revoking : $crl{$_} } 'ca', @ints);
$t->write_file('crl-gap.pem', join '', map { $crl{$_} } grep { $_ ne 'int5' }
	'ca', @ints);

$t->write_file('ok', "ok\n");

$t->run();

###############################################################################

my ($r, $mark);

# BMPString, UniversalString and TeletexString decode to the same name as a
# UTF8String: a UTF-8 rule matches, and the variables print it as nginx
# prints $ssl_client_s_dn, with the UTF-8 bytes escaped

my @types = (
	[ bmp => "\x1e\x06\0Z\0o\0\xeb" ],
	[ universal => "\x1c\x0c\0\0\0Z\0\0\0o\0\0\0\xeb" ],
	[ teletex => "\x14\x03Zo\xeb" ],
	[ t61 => "\x14\x03Zo\xeb" ],
	[ utf8 => "\x0c\x04Zo\xc3\xab" ],
);

for my $type (@types) {
	my ($name, $der) = @$type;

	ok(index(Mtls::cert_der("$d/$name.crt"), $der) >= 0, "$name: encoding");

	my $r = get('/zoe', $name);
	is(outcome($r), '200 allow', "$name: cn rule");
	is(header($r, 'X-CN'), 'Zo\C3\AB', "$name: \$mtls_cn");
	is(header($r, 'X-Subject'), header($r, 'X-Ngx-DN'),
		"$name: \$mtls_subject as \$ssl_client_s_dn");
}

is(get_outcome('/zoe_dn', 'bmp'), '200 allow', 'bmp: dn rule, UTF-8');
is(get_outcome('/zoe_dn_hex', 'universal'), '200 allow',
	'universal: dn rule, escaped');
is(get_outcome('/zoe_dn', 'teletex'), '200 allow', 'teletex: dn rule');

# a character outside the BMP (OpenSSL cannot read a BMPString with a
# surrogate pair at all, so only a UniversalString can carry it)

$r = get('/smile', 'universal_smile');
is(outcome($r), '200 allow', 'universal, outside the BMP: cn rule');
is(header($r, 'X-CN'), '\F0\9F\98\80', 'universal, outside the BMP: $mtls_cn');
is(header($r, 'X-Subject'), header($r, 'X-Ngx-DN'),
	'universal, outside the BMP: $mtls_subject as $ssl_client_s_dn');

# multi-valued RDNs: printed as OpenSSL prints them, matched as sets

$r = get('/mv', 'mv');
is(outcome($r), '200 allow', 'multi-valued: dn rule');
is(header($r, 'X-Subject'), header($r, 'X-Ngx-DN'),
	'multi-valued: $mtls_subject as $ssl_client_s_dn');
like(header($r, 'X-Subject'), qr/^[^,]*\+[^,]*\+[^,]*,O=Example$/,
	'multi-valued: three AVAs in one RDN');
is(header($r, 'X-CN'), 'alice', 'multi-valued: the single CN');
is(get_outcome('/alice', 'mv'), '200 allow', 'multi-valued: cn rule');

$r = get('/alice', 'mv_cn');
is(outcome($r), '403 deny not_allowed', 'two CNs in one RDN: denied');
is(header($r, 'X-CN'), '', 'two CNs in one RDN: no $mtls_cn');

$r = get('/alice', 'mv_one');
is(outcome($r), '200 allow', 'O+CN in the only RDN: cn rule');
is(header($r, 'X-Subject'), header($r, 'X-Ngx-DN'),
	'O+CN in the only RDN: $mtls_subject');

is(get_outcome('/num', 'num'), '200 allow', 'NumericString: cn rule');

# a SET OF in another order is the same RDN; $mtls_subject prints it in DER
# order, where nginx keeps the certificate's order

$r = get('/mv2', 'mv2');
is(outcome($r), '200 allow', 'unsorted multi-valued RDN: dn rule');
is(header($r, 'X-Subject'), 'OU=cd+CN=ab,O=Example',
	'unsorted multi-valued RDN: $mtls_subject in DER order');
is(header($r, 'X-Ngx-DN'), 'CN=ab+OU=cd,O=Example',
	'unsorted multi-valued RDN: $ssl_client_s_dn as encoded');

# an empty subject: no DN, no CN, the SAN decides

$r = get('/empty', 'empty');
is(outcome($r), '200 allow', 'empty subject: san rule');
is(header($r, 'X-Subject') . '|' . header($r, 'X-CN') . '|'
	. header($r, 'X-Ngx-DN'), '||', 'empty subject: variables');
is(get_outcome('/alice', 'empty'), '403 deny not_allowed',
	'empty subject: cn rule');

# a negative serial is shown, and denied, by its DER content octets

$r = get('/neg', 'neg');
is(outcome($r), '403 deny serial_denied', 'negative serial: denied');
is(header($r, 'X-Serial') . ' ' . header($r, 'X-Ngx-Serial'), '8001 -7FFF',
	'negative serial: $mtls_serial, $ssl_client_serial');

# a subject of 64 KB works, variables included

my $big_der = length Mtls::cert_der("$d/big.crt");
cmp_ok($big_der, '>', 64000, "big: certificate of $big_der bytes");

$r = get('/big', 'big');
is(outcome($r), '200 allow', 'big: allowed');
is(header($r, 'X-CN'), 'big', 'big: $mtls_cn');
is(header($r, 'X-Subject'), header($r, 'X-Ngx-DN'),
	'big: $mtls_subject as $ssl_client_s_dn');
is(scalar(() = header($r, 'X-Subject') =~ /OU=/g), 1000, 'big: 1000 OUs');

$mark = Mtls::log_mark($t);
is(get_outcome('/alice', 'big'), '403 deny not_allowed', 'big: denied');
like(Mtls::wait_log($t, $mark, qr/access forbidden by mtls/),
	qr/not_allowed, subject: "CN=big,OU=/, 'big: denial logged');

# one of 128 KB is refused in the handshake by OpenSSL's limit on the
# certificate message, before nginx or the module see it

my $huge_der = length Mtls::cert_der("$d/huge.crt");
cmp_ok($huge_der, '>', 102400, "huge: certificate of $huge_der bytes");

$mark = Mtls::log_mark($t);
{
	# the client sees the connection closed: expected, not worth a warning
	local $SIG{__WARN__} = sub {};
	is(get_outcome('/big', 'huge'), 'no response', 'huge: refused');
}
like(Mtls::wait_log($t, $mark, qr/excessive message size/), qr/\[info\]/,
	'huge: excessive message size');
is(get_outcome('/big', 'big'), '200 allow', 'huge: next request served');

# 5,000 SANs: the last one matches, and the variable holds all of them

$r = get('/san_last', 'sans');
is(outcome($r), '200 allow', 'sans: last one');
is(get_outcome('/san_first', 'sans'), '200 allow', 'sans: first, any case');
is(get_outcome('/san_wild', 'sans'), '200 allow', 'sans: wildcard');
is(get_outcome('/san_none', 'sans'), '403 deny not_allowed', 'sans: none');

my $r_any = get('/any', 'sans');
is(outcome($r_any), '200 allow', 'sans: mtls on');
my @names = split / /, header($r_any, 'X-SAN-DNS');
is(scalar @names, 5000, 'sans: $mtls_san_dns has 5000 names');
is($names[-1], 's5000.example', 'sans: $mtls_san_dns, last');

# deep chain: verified with ssl_verify_depth 8, refused by nginx with 7

is(get_outcome('/', 'deep', 8444), '200 allow', 'deep: depth 9');

$r = get('/', 'deep', 8445);
like($r // '', qr/^HTTP\/1\.1 400 .*The SSL certificate error/s,
	'deep: depth 8, nginx says 400');
like(header($r, 'X-Verify'), qr/^FAILED:/, 'deep: depth 8, verify failed');

# a CRL at every level: every certificate of the chain is checked

is(get_outcome('/', 'deep', 8446), '200 allow', 'deep: nine CRLs, allowed');
is(get_outcome('/', 'deep', 8447), '403 deny revoked',
	'deep: intermediate revoked in the middle');
is(get_outcome('/leaf', 'deep', 8447), '200 allow',
	'deep: intermediate revoked, leaf check only');
# a resumed session keeps no chain: it is rebuilt from the configured CAs

{
	my $ctx = Mtls::client_ctx("$d/deep");
	my $full = Mtls::resumed_get(port(8447), $ctx, '/');
	my $again = Mtls::resumed_get(port(8447), $ctx, '/');

	is(outcome($again) . ' ' . header($again, 'X-Reused'),
		'403 deny revoked r', 'deep: resumed session, still revoked');
}

is(get_outcome('/', 'deep', 8448), '403 deny crl_missing',
	'deep: a CRL missing in the middle');
is(get_outcome('/leaf', 'deep', 8448), '200 allow',
	'deep: a CRL missing, leaf check only');

# nginx is still serving, and no worker died

is(get_outcome('/alice', 'mv'), '200 allow', 'still serving');
unlike($t->read_file('error.log'), qr/exited on signal|worker process \d+ exited/,
	'no worker exited');

###############################################################################

sub get {
	my ($uri, $cert, $port) = @_;

	$cert = "$d/$cert" if defined $cert;

	return https_get(port($port // 8443), $uri, $cert);
}

sub get_outcome {
	return outcome(get(@_));
}

###############################################################################
