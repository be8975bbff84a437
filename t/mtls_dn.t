#!/usr/bin/perl

# Tests for the mtls module: mtls_allow_dn, compared structurally.

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
	->plan(27);

$t->write_file_expand('nginx.conf', <<'EOF');

%%TEST_GLOBALS%%

daemon off;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    add_header X-Decision $mtls_decision always;
    add_header X-Reason $mtls_reason always;
    add_header X-Ngx-DN $ssl_client_s_dn always;

    server {
        listen       127.0.0.1:%%PORT_8443%% ssl;
        server_name  localhost;

        ssl_certificate localhost.crt;
        ssl_certificate_key localhost.key;
        ssl_client_certificate ca.crt;
        ssl_verify_client optional_no_ca;

        location /dn {
            mtls_allow_dn "CN=alice,OU=ops,O=Example,C=US";
            try_files /ok =404;
        }

        location /short {
            mtls_allow_dn "CN=alice,O=Example";
            try_files /ok =404;
        }

        location /bob {
            mtls_allow_dn "CN=bob,O=Example";
            try_files /ok =404;
        }

        location /hex {
            mtls_allow_dn "CN=a\2Cb,O=Example";
            try_files /ok =404;
        }

        location /esc {
            mtls_allow_dn "CN=a\,b,O=Example";
            try_files /ok =404;
        }

        location /mv1 {
            mtls_allow_dn "CN=alice+UID=42,O=Example";
            try_files /ok =404;
        }

        location /mv2 {
            mtls_allow_dn "UID=42+CN=alice,O=Example";
            try_files /ok =404;
        }

        location /oid {
            mtls_allow_dn "2.5.4.3=alice,2.5.4.10=Example";
            try_files /ok =404;
        }

        location /two {
            mtls_allow_dn "CN=bob,O=Example";
            mtls_allow_dn "CN=alice,O=Example";
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

my %subj = (
	alice => '/C=US/O=Example/OU=ops/CN=alice',
	reversed => '/CN=alice/OU=ops/O=Example/C=US',
	extra => '/C=US/O=Example/OU=ops/OU=x/CN=alice',
	missing => '/O=Example/OU=ops/CN=alice',
	short => '/O=Example/CN=alice',
	bob => '/O=Example/CN=bob',
	carol => '/O=Example/CN=carol',

	# one RDN, CN "alice,O=Example"
	comma => '/CN=alice,O=Example',

	# CN "x,CN=alice" in O=Example: printed as CN=x\,CN=alice,O=Example
	inject => '/O=Example/CN=x,CN=alice',

	# CN "a,b"; and CN "a\2Cb" (a backslash, literally)
	ab => '/O=Example/CN=a,b',
	literal => '/O=Example/CN=a\\\\2Cb',

	# multi-valued RDN; the same attributes as separate RDNs
	mv => '/O=Example/CN=alice+UID=42',
	sep => '/O=Example/UID=42/CN=alice',
);

$pki->leaf($_, ca => 'ca', subj => $subj{$_}) for sort keys %subj;

$pki->leaf('bob_print', ca => 'ca', subj => '/O=Example/CN=bob',
	string_mask => 'default');

$t->write_file('ok', "ok\n");

$t->run();

###############################################################################

# the RDNs and their order

is(get('/dn', 'alice'), '200 allow', 'dn: exact');
is(get('/dn', 'reversed'), '403 deny not_allowed', 'dn: reversed order');
is(get('/dn', 'extra'), '403 deny not_allowed', 'dn: extra RDN');
is(get('/dn', 'missing'), '403 deny not_allowed', 'dn: missing RDN');
is(get('/dn', 'bob'), '403 deny not_allowed', 'dn: other subject');
is(get('/short', 'short'), '200 allow', 'short: exact');

# separators inside values are not separators

is(header(https_get(port(8443), '/short', "$d/comma"), 'X-Ngx-DN'),
	'CN=alice\,O=Example', 'comma: a single RDN');
is(get('/short', 'comma'), '403 deny not_allowed', 'comma: denied');

# nginx's $ssl_client_s_dn of this subject ends with the rule's text, a
# regular expression on it would be fooled

like(header(https_get(port(8443), '/short', "$d/inject"), 'X-Ngx-DN'),
	qr/CN=alice,O=Example$/, 'inject: string ends with the rule');
is(get('/short', 'inject'), '403 deny not_allowed', 'inject: denied');

# string types: UTF8String and PrintableString of the same text

ok(index(Mtls::cert_der("$d/bob.crt"), "\x0c\x03bob") >= 0,
	'bob is a UTF8String');
ok(index(Mtls::cert_der("$d/bob_print.crt"), "\x13\x03bob") >= 0,
	'bob is a PrintableString');
is(get('/bob', 'bob'), '200 allow', 'UTF8String');
is(get('/bob', 'bob_print'), '200 allow', 'PrintableString');

# escaped values in the rule

is(get('/hex', 'ab'), '200 allow', 'hex escape');
is(get('/esc', 'ab'), '200 allow', 'backslash escape');
is(get('/hex', 'literal'), '403 deny not_allowed', 'hex escape: literal');
is(get('/esc', 'literal'), '403 deny not_allowed', 'escape: literal');

# multi-valued RDNs, in any order inside the RDN

is(get('/mv1', 'mv'), '200 allow', 'multi-valued');
is(get('/mv2', 'mv'), '200 allow', 'multi-valued, other order');
is(get('/mv1', 'sep'), '403 deny not_allowed', 'multi-valued: separate RDNs');
is(get('/short', 'mv'), '403 deny not_allowed', 'multi-valued: not single');
is(get('/mv1', 'short'), '403 deny not_allowed', 'multi-valued: missing UID');

# types by OID

is(get('/oid', 'short'), '200 allow', 'numeric OIDs');

# several rules

is(get('/two', 'short'), '200 allow', 'two rules: second');
is(get('/two', 'bob'), '200 allow', 'two rules: first');
is(get('/two', 'carol'), '403 deny not_allowed', 'two rules: neither');

###############################################################################

sub get {
	my ($uri, $cert, $port) = @_;

	$cert = "$d/$cert" if defined $cert && !ref $cert;

	return outcome(https_get(port($port // 8443), $uri, $cert));
}

###############################################################################
