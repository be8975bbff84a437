#!/usr/bin/perl

# Tests for the mtls module: mtls_allow_fingerprint.

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
	->plan(14);

my $d = $t->testdir();
my $pki = Mtls::PKI->new($d);

$pki->ca('ca', subj => '/O=Example/CN=Test CA');
$pki->leaf('localhost', ca => 'ca', subj => '/CN=localhost',
	san => 'DNS:localhost', eku => 'serverAuth');

$pki->leaf($_, ca => 'ca', subj => "/O=Example/CN=$_") for qw/alice bob carol/;

# the same subject and key, issued again: another certificate

$pki->leaf('alice_re', ca => 'ca', subj => '/O=Example/CN=alice',
	key => 'alice');

$pki->self_signed('self', subj => '/O=Example/CN=self');

my %fp = map { $_ => der_fingerprint_sha256("$d/$_.crt") }
	qw/alice alice_re bob carol self/;

# upper case with colons

(my $alice_uc = uc $fp{alice}) =~ s/(..)(?=.)/$1:/g;

my $conf = <<'EOF';

%%TEST_GLOBALS%%

daemon off;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    add_header X-Decision $mtls_decision always;
    add_header X-Reason $mtls_reason always;
    add_header X-Fingerprint $mtls_fingerprint always;

    server {
        listen       127.0.0.1:%%PORT_8443%% ssl;
        server_name  localhost;

        ssl_certificate localhost.crt;
        ssl_certificate_key localhost.key;
        ssl_client_certificate ca.crt;
        ssl_verify_client optional_no_ca;

        location /lc {
            mtls_allow_fingerprint sha256:__ALICE__;
            try_files /ok =404;
        }

        location /uc {
            mtls_allow_fingerprint sha256:__ALICE_UC__;
            try_files /ok =404;
        }

        location /multi {
            mtls_allow_fingerprint sha256:__BOB__ sha256:__CAROL__;
            mtls_allow_fingerprint sha256:__ALICE__;
            try_files /ok =404;
        }

        location /bob {
            mtls_allow_fingerprint sha256:__BOB__;
            try_files /ok =404;
        }

        location /self {
            mtls_allow_fingerprint sha256:__SELF__;
            try_files /ok =404;
        }
    }
}

EOF

$conf =~ s/__ALICE_UC__/$alice_uc/g;
$conf =~ s/__ALICE__/$fp{alice}/g;
$conf =~ s/__BOB__/$fp{bob}/g;
$conf =~ s/__CAROL__/$fp{carol}/g;
$conf =~ s/__SELF__/$fp{self}/g;

$t->write_file_expand('nginx.conf', $conf);
$t->write_file('ok', "ok\n");

$t->run();

###############################################################################

isnt($fp{alice}, $fp{alice_re}, 'reissued certificate differs');

is(get('/lc', 'alice'), '200 allow', 'lower case');
is(get('/lc', 'bob'), '403 deny not_allowed', 'lower case: other');
is(get('/uc', 'alice'), '200 allow', 'upper case with colons');
is(get('/uc', 'alice_re'), '403 deny not_allowed', 'reissued: same key');

is(get('/multi', 'alice'), '200 allow', 'multi: second directive');
is(get('/multi', 'bob'), '200 allow', 'multi: first value');
is(get('/multi', 'carol'), '200 allow', 'multi: second value');
is(get('/multi', 'alice_re'), '403 deny not_allowed', 'multi: reissued');

is(get('/bob', 'bob'), '200 allow', 'bob');
is(get('/bob', 'alice'), '403 deny not_allowed', 'bob: alice');

# pinning does not replace verification

is(get('/self', 'self'), '403 deny unverified', 'self-signed pinned');

is(header(https_get(port(8443), '/lc', "$d/alice"), 'X-Fingerprint'),
	$fp{alice}, '$mtls_fingerprint');
is(header(https_get(port(8443), '/lc', "$d/bob"), 'X-Fingerprint'),
	$fp{bob}, '$mtls_fingerprint when denied');

###############################################################################

sub get {
	my ($uri, $cert) = @_;
	return outcome(https_get(port(8443), $uri, "$d/$cert"));
}

###############################################################################
