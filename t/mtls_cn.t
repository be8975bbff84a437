#!/usr/bin/perl

# Tests for the mtls module: mtls_allow_cn.

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
	->plan(23);

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

        location /list {
            mtls_allow_cn alice bob;
            mtls_allow_cn carol;
            try_files /ok =404;
        }

        location /alice {
            mtls_allow_cn alice;
            try_files /ok =404;
        }

        location /x {
            mtls_allow_cn aliceXevil;
            try_files /ok =404;
        }

        location /nul {
            mtls_allow_cn alice evil aliceevil "alice\0evil" "alice\00evil"
                          "alice\\0evil" "alice\\00evil" "alice\x00evil"
                          "alice%00evil";
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

$pki->leaf($_, ca => 'ca', subj => "/O=Example/CN=$_")
	for qw/alice bob carol dave Alice alicex alic/;

$pki->leaf('two', ca => 'ca', subj => '/O=Example/CN=alice/CN=bob');
$pki->leaf('two_same', ca => 'ca', subj => '/O=Example/CN=alice/CN=alice');
$pki->leaf('none', ca => 'ca', subj => '/O=Example/OU=alice');
$pki->leaf('pre', ca => 'ca', subj => '/O=Example/CN=aliceXevil');
$pki->patch('nul', from => 'pre', replace => [ 'aliceXevil' => "alice\0evil" ]);
$pki->self_signed('self', subj => '/O=Example/CN=alice');

$t->write_file('ok', "ok\n");

$t->run();

###############################################################################

# several names in one directive and in several directives

is(get('/list', 'alice'), '200 allow', 'list: alice');
is(get('/list', 'bob'), '200 allow', 'list: bob');
is(get('/list', 'carol'), '200 allow', 'list: carol (second directive)');
is(get('/list', 'dave'), '403 deny not_allowed', 'list: dave');
is(get('/alice', 'alice'), '200 allow', 'single: alice');
is(get('/alice', 'bob'), '403 deny not_allowed', 'single: bob');
is(get('/alice', 'self'), '403 deny unverified', 'single: self-signed alice');

# exact byte match: case-sensitive, no prefix or substring match

is(get('/alice', 'Alice'), '403 deny not_allowed', 'case-sensitive');
is(get('/alice', 'alicex'), '403 deny not_allowed', 'no prefix match');
is(get('/alice', 'alic'), '403 deny not_allowed', 'rule is no prefix');
is(get('/list', 'none'), '403 deny not_allowed', 'no CN, name in OU');

# a subject with two CNs never matches, even if both names are allowed

is(get('/list', 'two'), '403 deny not_allowed', 'two CNs, both allowed');
is(get('/alice', 'two'), '403 deny not_allowed', 'two CNs, first allowed');
is(get('/alice', 'two_same'), '403 deny not_allowed', 'two equal CNs');

# a CN with an embedded NUL byte; the unpatched certificate shows the rule
# works, the patched one (re-signed, so verified) matches nothing

is(get('/x', 'pre'), '200 allow', 'NUL: unpatched certificate allowed');
is(get('/x', 'nul'), '403 deny not_allowed', 'NUL: not aliceXevil');
is(get('/alice', 'nul'), '403 deny not_allowed', 'NUL: not alice');
is(get('/list', 'nul'), '403 deny not_allowed', 'NUL: not in list');
is(get('/nul', 'nul'), '403 deny not_allowed', 'NUL: no spelling matches');

# the same rules still work for the names they spell

is(get('/nul', 'alice'), '200 allow', 'NUL location: alice allowed');

# the patched certificate is what it claims to be

my $nul = Mtls::cert_der("$d/nul.crt");
ok(index($nul, "alice\0evil") >= 0, 'NUL: present in certificate');
like($pki->verify('nul', 'ca'), qr/: OK$/m, 'NUL: certificate verifies');

# and no NUL byte reaches the response

my $r = https_get(port(8443), '/list', "$d/nul");
ok(defined $r && $r !~ /\x00/, 'NUL: no NUL byte in response');

###############################################################################

sub get {
	my ($uri, $cert, $port) = @_;

	$cert = "$d/$cert" if defined $cert && !ref $cert;

	return outcome(https_get(port($port // 8443), $uri, $cert));
}

###############################################################################
