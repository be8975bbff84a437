#!/usr/bin/perl

# Tests for the mtls module: mtls_crl, mtls_crl_check, mtls_crl_grace.
# CRLs made with "openssl ca -gencrl": revoked leaves and intermediates,
# look-up by issuer and serial, chain and leaf checks, a missing CRL for an
# issuer, stale CRLs, PEM with several CRLs, DER, CRLs rejected at start and
# at reload (unknown CA, bad signature, lower CRL number, truncated), an
# optional CRL, and a revocation that reaches an open keep-alive connection.

###############################################################################

use warnings;
use strict;

use Test::More;

BEGIN { use FindBin; chdir($FindBin::Bin); }

use Test::Nginx;
use Mtls;

use MIME::Base64 qw/decode_base64 encode_base64/;

###############################################################################

select STDERR; $| = 1;
select STDOUT; $| = 1;

my $t = Test::Nginx->new()->has(qw/http http_ssl/)->has_daemon('openssl')
	->plan(94);

my $tls = <<'EOF';
        ssl_certificate localhost.crt;
        ssl_certificate_key localhost.key;
        ssl_client_certificate cas.crt;
        ssl_verify_client optional_no_ca;
        ssl_verify_depth 3;
EOF

my $conf = <<'EOF';

%%TEST_GLOBALS%%

daemon off;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    mtls_reload_interval 200ms;

    add_header X-Decision $mtls_decision always;
    add_header X-Reason $mtls_reason always;
    add_header X-Conn $connection always;

    # root and intermediate CRLs

    server {
        listen       127.0.0.1:%%PORT_8443%% ssl;
        server_name  localhost;
%%TLS%%
        mtls_crl ca.crl;
        mtls_crl int.crl;

        location /chain {
            try_files /ok =404;
        }

        location /leaf {
            mtls_crl_check leaf;
            try_files /ok =404;
        }
    }

    # the root's CRL revokes the intermediate

    server {
        listen       127.0.0.1:%%PORT_8444%% ssl;
        server_name  localhost;
%%TLS%%
        mtls_crl ca-int.crl;
        mtls_crl int.crl;

        location /chain {
            try_files /ok =404;
        }

        location /leaf {
            mtls_crl_check leaf;
            try_files /ok =404;
        }
    }

    # no CRL of the root

    server {
        listen       127.0.0.1:%%PORT_8445%% ssl;
        server_name  localhost;
%%TLS%%
        mtls_crl int.crl;

        location /chain {
            mtls_crl_check chain;
            try_files /ok =404;
        }

        location /leaf {
            mtls_crl_check leaf;
            try_files /ok =404;
        }
    }

    # past its nextUpdate (an hour ago)

    server {
        listen       127.0.0.1:%%PORT_8446%% ssl;
        server_name  localhost;
%%TLS%%
        mtls_crl stale.crl;

        location /nograce {
            try_files /ok =404;
        }

        location /grace {
            mtls_crl_grace 1d;
            try_files /ok =404;
        }

        location /short {
            mtls_crl_grace 30m;
            try_files /ok =404;
        }
    }

    # past nextUpdate, within the server's grace; and a location whose
    # smaller grace has run out, which the warning must reflect

    server {
        listen       127.0.0.1:%%PORT_8453%% ssl;
        server_name  localhost;
%%TLS%%
        mtls_crl graced.crl;
        mtls_crl_grace 1d;

        location / {
            try_files /ok =404;
        }
    }

    server {
        listen       127.0.0.1:%%PORT_8454%% ssl;
        server_name  localhost;
%%TLS%%
        mtls_crl strict.crl;
        mtls_crl_grace 1d;

        location / {
            try_files /ok =404;
        }

        location /strict {
            mtls_crl_grace 0s;
            try_files /ok =404;
        }
    }

    # a CRL whose nextUpdate passes while a connection is open; a location
    # with other rules on the same connection

    server {
        listen       127.0.0.1:%%PORT_8455%% ssl;
        server_name  localhost;
%%TLS%%
        mtls_crl expiring.crl;

        location / {
            try_files /ok =404;
        }

        location /bob {
            mtls_allow_cn bob;
            try_files /ok =404;
        }
    }

    # two CRLs in one PEM file

    server {
        listen       127.0.0.1:%%PORT_8447%% ssl;
        server_name  localhost;
%%TLS%%
        mtls_crl both.pem;

        location / {
            try_files /ok =404;
        }
    }

    # DER

    server {
        listen       127.0.0.1:%%PORT_8448%% ssl;
        server_name  localhost;
%%TLS%%
        mtls_crl ca.der;
        mtls_crl_check leaf;

        location / {
            try_files /ok =404;
        }
    }

    # live updates

    server {
        listen       127.0.0.1:%%PORT_8449%% ssl;
        server_name  localhost;
%%TLS%%
        mtls_crl live.crl;

        location / {
            try_files /ok =404;
        }
    }

    # optional, missing at start

    server {
        listen       127.0.0.1:%%PORT_8450%% ssl;
        server_name  localhost;
%%TLS%%
        mtls_crl late.crl optional;

        location / {
            try_files /ok =404;
        }
    }

    server {
        listen       127.0.0.1:%%PORT_8080%%;
        server_name  localhost;

        location /status {
            mtls off;
            mtls_status;
        }
    }
}

EOF

$conf =~ s/%%TLS%%\n/$tls/g;
$t->write_file_expand('nginx.conf', $conf);

my $d = $t->testdir();
my $pki = Mtls::PKI->new($d);

$pki->ca('ca', subj => '/O=Example/CN=Test CA', serial => '0x10');
$pki->ca('int', ca => 'ca', subj => '/O=Example/CN=Int CA', serial => '0x11');
$pki->ca('other', subj => '/O=Example/CN=Other CA', serial => '0x12');
$pki->ca('fake', subj => '/O=Example/CN=Test CA', serial => '0x13');

$pki->leaf('localhost', ca => 'ca', subj => '/CN=localhost',
	san => 'DNS:localhost', eku => 'serverAuth', serial => '0x2001');

$pki->leaf('alice', ca => 'ca', subj => '/O=Example/CN=alice',
	serial => '0x1002');
$pki->leaf('bob', ca => 'ca', subj => '/O=Example/CN=bob',
	serial => '0x1003');
$pki->leaf('carol', ca => 'ca', subj => '/O=Example/CN=carol',
	serial => '0x1004');
$pki->leaf('deep', ca => 'int', subj => '/O=Example/CN=deep',
	serial => '0x3002');
$pki->leaf('deep2', ca => 'int', subj => '/O=Example/CN=deep2',
	serial => '0x3003');

# the serial of bob, from the intermediate: CRLs are looked up by issuer
# and serial

$pki->leaf('twin', ca => 'int', subj => '/O=Example/CN=twin',
	serial => '0x1003');

$t->write_file('cas.crt', $t->read_file('ca.crt') . $t->read_file('int.crt'));
$t->write_file('ok', "ok\n");

my $now = time();

$pki->crl('ca.crl', ca => 'ca', revoke => [ 'bob' ], number => 10);
$pki->crl('int.crl', ca => 'int', revoke => [ 'deep2' ]);
$pki->crl('ca-int.crl', ca => 'ca', revoke => [ 'int' ], number => 1);
$pki->crl('stale.crl', ca => 'ca', revoke => [ 'bob' ], number => 1,
	lastupdate => asn1_time($now - 2 * 86400),
	nextupdate => asn1_time($now - 3600));
$pki->crl($_, ca => 'ca', revoke => [ 'bob' ], number => 1,
	lastupdate => asn1_time($now - 2 * 86400),
	nextupdate => asn1_time($now - 3600)) for qw/graced.crl strict.crl/;
$t->write_file('both.pem',
	$t->read_file('ca.crl') . $t->read_file('int.crl'));
$pki->crl('ca.der', ca => 'ca', revoke => [ 'bob' ], number => 1, der => 1);
$pki->crl('live.crl', ca => 'ca', number => 1);
$pki->crl('expiring.crl', ca => 'ca', number => 1);

# CRLs that are rejected

$pki->crl('other.crl', ca => 'other', number => 1);
$pki->crl('fake.crl', ca => 'fake', number => 50);
$pki->crl('flipped.der', ca => 'ca', number => 50, der => 1);

my $flipped = $t->read_file('flipped.der');
substr($flipped, -1, 1) = chr(ord(substr($flipped, -1, 1)) ^ 0x01);
$t->write_file('flipped.crl', pem($flipped));

$t->run();

###############################################################################

# leaf and intermediate CRLs, whole chain (the default)

is(get('/chain', 'alice'), '200 allow', 'chain: not revoked');
is(get('/chain', 'bob'), '403 deny revoked', 'chain: revoked by the root');
is(get('/chain', 'deep'), '200 allow', 'chain: intermediate, not revoked');
is(get('/chain', 'deep2'), '403 deny revoked',
	'chain: revoked by the intermediate');
is(get('/chain', 'twin'), '200 allow',
	'chain: revoked serial, other issuer');
is(get('/chain'), '403 deny no_cert', 'chain: no certificate');

is(get('/leaf', 'bob'), '403 deny revoked', 'leaf: revoked by the root');
is(get('/leaf', 'deep2'), '403 deny revoked',
	'leaf: revoked by the intermediate');
is(get('/leaf', 'deep'), '200 allow', 'leaf: not revoked');

# the intermediate revoked in the root's CRL

is(get('/chain', 'deep', 8444), '403 deny revoked',
	'revoked intermediate: chain');
is(get('/chain', 'alice', 8444), '200 allow',
	'revoked intermediate: chain, other certificate');
is(get('/leaf', 'deep', 8444), '200 allow', 'revoked intermediate: leaf');
is(get('/leaf', 'deep2', 8444), '403 deny revoked',
	'revoked intermediate: leaf, revoked leaf');

# no CRL for the root: its certificates, and the intermediate, unchecked

is(get('/chain', 'deep', 8445), '403 deny crl_missing',
	'no root CRL: chain, intermediate');
is(get('/chain', 'alice', 8445), '403 deny crl_missing',
	'no root CRL: chain, leaf');
is(get('/leaf', 'deep', 8445), '200 allow', 'no root CRL: leaf, allowed');
is(get('/leaf', 'deep2', 8445), '403 deny revoked',
	'no root CRL: leaf, revoked');
is(get('/leaf', 'alice', 8445), '403 deny crl_missing',
	'no root CRL: leaf issued by the root');

# stale

is(get('/nograce', 'alice', 8446), '403 deny crl_stale', 'stale: no grace');
is(get('/grace', 'alice', 8446), '200 allow', 'stale: within grace');
is(get('/grace', 'bob', 8446), '403 deny revoked',
	'stale: within grace, revoked');
is(get('/short', 'alice', 8446), '403 deny crl_stale',
	'stale: past grace');

like(Mtls::wait_log($t, 0, qr/past its nextUpdate/),
	qr/\[warn\] .*mtls: CRL in "\Q$d\E\/stale\.crl" is past its nextUpdate /,
	'stale: warning');

is(get('/', 'alice', 8453), '200 allow', 'stale: server grace');
like(Mtls::wait_log($t, 0, qr/graced\.crl" is past/),
	qr/\[warn\] .*"\Q$d\E\/graced\.crl" is past its nextUpdate .*, within "mtls_crl_grace", certificates of its issuer still pass/,
	'stale: warning within grace');

is(get('/', 'alice', 8454), '200 allow', 'stale: server grace, location');
is(get('/strict', 'alice', 8454), '403 deny crl_stale',
	'stale: location without grace');
like(Mtls::wait_log($t, 0, qr/strict\.crl" is past/),
	qr/"\Q$d\E\/strict\.crl" is past its nextUpdate .*, certificates of its issuer are denied/,
	'stale: warning names the smaller grace of a location');

# two CRLs in a PEM file; DER

is(get('/', 'alice', 8447), '200 allow', 'PEM, two CRLs: allowed');
is(get('/', 'bob', 8447), '403 deny revoked', 'PEM, two CRLs: first');
is(get('/', 'deep', 8447), '200 allow', 'PEM, two CRLs: intermediate');
is(get('/', 'deep2', 8447), '403 deny revoked', 'PEM, two CRLs: second');

is(get('/', 'alice', 8448), '200 allow', 'DER: allowed');
is(get('/', 'bob', 8448), '403 deny revoked', 'DER: revoked');

# the status of CRL sources

my $status = Mtls::mtls_status(port(8080));
my $src = Mtls::status_source($status, "$d/ca.crl");

is($src && join(' ', map { $src->{$_} // 'null' } qw/kind entries generation
	last_error/), 'crl 1 1 null', 'status: CRL');
is($src && join(' ', map { $_->{issuer} . ' ' . ($_->{number} // 'null')
	. ' ' . $_->{entries} } @{$src->{crls}}),
	'CN=Test CA,O=Example 10 1', 'status: CRL number in decimal');

$src = Mtls::status_source($status, "$d/int.crl");

is($src && join(' ', map { $_->{issuer} . ' ' . ($_->{number} // 'null') }
	@{$src->{crls}}), 'CN=Int CA,O=Example null', 'status: no CRL number');

$src = Mtls::status_source($status, "$d/both.pem");

is($src && $src->{entries}, 2, 'status: two CRLs, entries');
is($src && join(', ', map { $_->{issuer} } @{$src->{crls}}),
	'CN=Test CA,O=Example, CN=Int CA,O=Example', 'status: two CRLs');

$src = Mtls::status_source($status, "$d/stale.crl");

is($src && $src->{crls}[0]{next_update}, rfc3339($now - 3600),
	'status: nextUpdate');
is($src && $src->{crls}[0]{this_update}, rfc3339($now - 2 * 86400),
	'status: thisUpdate');

###############################################################################

# The module remembers that a connection's certificate passed in a location
# until a table changes; not past the nextUpdate of a CRL it relied on, nor
# for another location.

# a CRL that expires in a few seconds, put in place now (the time the
# machine takes to get here varies too much to set it at the start)

my $expiring = time() + 5;
my $mark = Mtls::log_mark($t);
$pki->crl('expiring.next', ca => 'ca', number => 2,
	nextupdate => asn1_time($expiring));
Mtls::write_atomic("$d/expiring.crl", $t->read_file('expiring.next'));
Mtls::wait_log($t, $mark, qr/mtls: .*expiring\.crl/)
	or diag('no reload of expiring.crl logged');

my $kx = Mtls::KeepAlive->new(port => port(8455), cert => "$d/alice");

is(outcome($kx && $kx->get('/')), '200 allow', 'expiring: allowed');
is(outcome($kx && $kx->get('/')), '200 allow', 'expiring: allowed again');
is(outcome($kx && $kx->get('/bob')), '403 deny not_allowed',
	'expiring: other location, same connection');
is(outcome($kx && $kx->get('/')), '200 allow', 'expiring: back, allowed');

select(undef, undef, undef, 0.2) while time() <= $expiring + 1;

is(outcome($kx && $kx->get('/')), '403 deny crl_stale',
	'expiring: stale on the same connection');

###############################################################################

# live: one keep-alive connection, the CRL is re-issued under it

my @r;
my $ka = Mtls::KeepAlive->new(port => port(8449), cert => "$d/carol");

push @r, $ka && $ka->get('/');
is(outcome($r[-1]), '200 allow', 'live: allowed');

$mark = Mtls::log_mark($t);
update($t, 'live.crl', ca => 'ca', revoke => [ 'carol' ], number => 2);

like(Mtls::wait_log($t, $mark, qr/mtls: .*live\.crl/),
	qr/\[notice\] .*mtls: reloaded "\Q$d\E\/live\.crl", 1 entries in \d+ ms$/,
	'live: reload logged');

push @r, $ka && $ka->get('/');
is(outcome($r[-1]), '403 deny revoked', 'live: revoked on the connection');

$status = Mtls::mtls_status(port(8080));
$src = Mtls::status_source($status, "$d/live.crl");

is($src && join(' ', $src->{generation}, $src->{entries},
	$src->{crls}[0]{number} // 'null'), '2 1 2', 'live: status');

my $gen = $src && $src->{generation};

# an older CRL (a lower number, which does not revoke carol)

$mark = Mtls::log_mark($t);
update($t, 'live.crl', ca => 'ca', number => 1);

like(Mtls::wait_log($t, $mark, qr/mtls: .*live\.crl/),
	qr/\[error\] .*mtls: .*"\Q$d\E\/live\.crl".* older than the one in force \(CRL number 1, in force 2\), previous data stays in force$/,
	'lower number: error logged');

push @r, $ka && $ka->get('/');
is(outcome($r[-1]), '403 deny revoked', 'lower number: still revoked');

$status = Mtls::mtls_status(port(8080));
$src = Mtls::status_source($status, "$d/live.crl");

like($src && $src->{last_error}, qr/older than the one in force/,
	'lower number: status last error');
is($src && "$src->{generation} $src->{crls}[0]{number}", "$gen 2",
	'lower number: status unchanged');

# a bad signature

$mark = Mtls::log_mark($t);
Mtls::write_atomic("$d/live.crl", $t->read_file('flipped.crl'));

like(Mtls::wait_log($t, $mark, qr/mtls: .*live\.crl/),
	qr/\[error\] .*mtls: CRL #1 in "\Q$d\E\/live\.crl" has a bad signature.*, previous data stays in force$/,
	'bad signature: error logged');

push @r, $ka && $ka->get('/');
is(outcome($r[-1]), '403 deny revoked', 'bad signature: still revoked');

$status = Mtls::mtls_status(port(8080));
$src = Mtls::status_source($status, "$d/live.crl");

like($src && $src->{last_error}, qr/bad signature/,
	'bad signature: status last error');

# the name of a known CA, another key

$mark = Mtls::log_mark($t);
Mtls::write_atomic("$d/live.crl", $t->read_file('fake.crl'));

like(Mtls::wait_log($t, $mark, qr/mtls: .*live\.crl/),
	qr/\[error\] .*mtls: CRL #1 in "\Q$d\E\/live\.crl" has a bad signature/,
	'same name, other key: error logged');

push @r, $ka && $ka->get('/');
is(outcome($r[-1]), '403 deny revoked', 'same name, other key: still revoked');

# an unknown CA

$mark = Mtls::log_mark($t);
Mtls::write_atomic("$d/live.crl", $t->read_file('other.crl'));

like(Mtls::wait_log($t, $mark, qr/mtls: .*live\.crl/),
	qr/\[error\] .*mtls: CRL #1 in "\Q$d\E\/live\.crl" is not signed by a known CA \("CN=Other CA,O=Example"\), previous data stays in force$/,
	'unknown CA: error logged');

push @r, $ka && $ka->get('/');
is(outcome($r[-1]), '403 deny revoked', 'unknown CA: still revoked');

# truncated: a newer CRL cut short

$pki->crl('newer.crl', ca => 'ca', number => 60);
my $pem = $t->read_file('newer.crl');

$mark = Mtls::log_mark($t);
Mtls::write_atomic("$d/live.crl", substr($pem, 0, int(length($pem) / 2)));

like(Mtls::wait_log($t, $mark, qr/mtls: .*live\.crl/),
	qr/\[error\] .*mtls: truncated or corrupt CRL #1 in "\Q$d\E\/live\.crl": .*, previous data stays in force$/,
	'truncated: error logged');

push @r, $ka && $ka->get('/');
is(outcome($r[-1]), '403 deny revoked', 'truncated: still revoked');

$status = Mtls::mtls_status(port(8080));
$src = Mtls::status_source($status, "$d/live.crl");

is($src && "$src->{generation} $src->{entries}", "$gen 1",
	'faults: status generation and entries unchanged');

# a newer CRL, the same number too, is taken

$mark = Mtls::log_mark($t);
update($t, 'live.crl', ca => 'ca', revoke => [ 'carol', 'alice' ], number => 2);

like(Mtls::wait_log($t, $mark, qr/mtls: .*live\.crl/),
	qr/mtls: reloaded "\Q$d\E\/live\.crl", 2 entries in \d+ ms$/,
	'same number: reloaded');

$mark = Mtls::log_mark($t);
update($t, 'live.crl', ca => 'ca', number => 3);
Mtls::wait_log($t, $mark, qr/mtls: .*live\.crl/);

push @r, $ka && $ka->get('/');
is(outcome($r[-1]), '200 allow', 'newer CRL without the serial: allowed');

$status = Mtls::mtls_status(port(8080));
$src = Mtls::status_source($status, "$d/live.crl");

is($src && join(' ', $src->{generation}, $src->{crls}[0]{number} // 'null',
	$src->{last_error} // 'null'), ($gen + 2) . ' 3 null',
	'newer CRL: status');

my %conn = map { header($_, 'X-Conn') // 'none' => 1 } @r;

is(join(' ', sort keys %conn), header($r[0], 'X-Conn'),
	'live: one connection');

$ka->close() if $ka;

###############################################################################

# optional, missing at start: denied until a valid CRL arrives

is(get('/', 'alice', 8450), '403 deny crl_missing', 'optional: missing');

$status = Mtls::mtls_status(port(8080));
$src = Mtls::status_source($status, "$d/late.crl");

is($src && join(' ', map { $src->{$_} // 'null' } qw/kind generation
	entries/), 'crl 0 0', 'optional: status');
ok($src && $src->{optional}, 'optional: status optional');

$mark = Mtls::log_mark($t);
Mtls::write_atomic("$d/late.crl", $t->read_file('other.crl'));
Mtls::wait_log($t, $mark, qr/mtls: .*late\.crl/);

is(get('/', 'alice', 8450), '403 deny crl_missing',
	'optional: CRL of an unknown CA');

$mark = Mtls::log_mark($t);
update($t, 'late.crl', ca => 'ca', revoke => [ 'bob' ], number => 1);

like(Mtls::wait_log($t, $mark, qr/mtls: reloaded .*late\.crl/),
	qr/mtls: reloaded "\Q$d\E\/late\.crl", 1 entries in \d+ ms$/,
	'optional: valid CRL logged');
is(get('/', 'alice', 8450), '200 allow', 'optional: valid CRL, allowed');
is(get('/', 'bob', 8450), '403 deny revoked', 'optional: valid CRL, revoked');

###############################################################################

# start-up: a CRL that is missing or does not verify is an [emerg]

my $out = check($t, 'mtls_crl other.crl;');

like($out, qr/\[emerg\] .*mtls: CRL #1 in "\Q$d\E\/other\.crl" is not signed by a known CA/,
	'start: unknown CA');
unlike($out, qr/test is successful/, 'start: unknown CA fails');

like(check($t, 'mtls_crl flipped.crl;'),
	qr/\[emerg\] .*mtls: CRL #1 in "\Q$d\E\/flipped\.crl" has a bad signature/,
	'start: bad signature');
like(check($t, 'mtls_crl fake.crl;'),
	qr/\[emerg\] .*mtls: CRL #1 in "\Q$d\E\/fake\.crl" has a bad signature/,
	'start: same name, other key');
like(check($t, 'mtls_crl missing.crl;'),
	qr/\[emerg\] .*mtls: .*"\Q$d\E\/missing\.crl"/, 'start: missing');

$t->write_file('empty.crl', '');

like(check($t, 'mtls_crl empty.crl;'),
	qr/\[emerg\] .*mtls: .*"\Q$d\E\/empty\.crl"/, 'start: empty');

$t->write_file('garbage.crl', "-----BEGIN X509 CRL-----\nAAAA\n");

like(check($t, 'mtls_crl garbage.crl;'),
	qr/\[emerg\] .*mtls: .*"\Q$d\E\/garbage\.crl"/, 'start: garbage');

$t->write_file('twice.pem',
	$t->read_file('ca.crl') . $t->read_file('ca-int.crl'));

like(check($t, 'mtls_crl twice.pem;'),
	qr/\[emerg\] .*mtls: CRL #2 in "\Q$d\E\/twice\.pem" has the same issuer as CRL #1/,
	'start: two CRLs of one issuer');

$out = check($t, 'mtls_crl missing.crl optional;');

like($out, qr/\[warn\] .*mtls: .*"\Q$d\E\/missing\.crl"/,
	'start: optional, missing, warning');
like($out, qr/test is successful/, 'start: optional, missing, passes');

like(check($t, 'mtls_crl_check both;'), qr/\[emerg\] .*invalid value "both"/,
	'start: bad mtls_crl_check');
like(check($t, 'location /x { mtls_crl ca.crl; }'),
	qr/\[emerg\] .*"mtls_crl" directive is not allowed here/,
	'start: mtls_crl in a location');

# the CA that signs a CRL may be one of ssl_trusted_certificate

like(check($t, 'mtls_crl int.crl;', 'ssl_client_certificate ca.crt;'
	. ' ssl_trusted_certificate int.crt;'),
	qr/test is successful/, 'start: CA in ssl_trusted_certificate');
like(check($t, 'mtls_crl int.crl;', 'ssl_client_certificate ca.crt;'),
	qr/\[emerg\] .*mtls: CRL #1 in "\Q$d\E\/int\.crl" is not signed by a known CA/,
	'start: CA not configured');

# a relative ssl_client_certificate at the http level, inherited by a
# server that does not verify clients, as nginx resolves it: against the
# configuration prefix

like(nginx_t($t, <<'EOF', 'http-level.conf'), qr/test is successful/,
%%TEST_GLOBALS%%

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ssl_certificate localhost.crt;
    ssl_certificate_key localhost.key;
    ssl_client_certificate cas.crt;

    server {
        listen       127.0.0.1:%%PORT_8451%% ssl;
        ssl_verify_client on;
        mtls_crl ca.crl;
    }

    server {
        listen       127.0.0.1:%%PORT_8452%%;
    }
}

EOF
	'start: ssl_client_certificate at the http level, relative');

###############################################################################

$t->stop();

my $log = $t->read_file('error.log');

like($log, qr/\[error\] .*access forbidden by mtls: revoked, subject: "CN=bob,O=Example", serial: 1003, by "\Q$d\E\/ca\.crl", /,
	'log: revoked leaf');
like($log, qr/\[error\] .*access forbidden by mtls: revoked, subject: "CN=deep,O=Example", serial: 3002, by "\Q$d\E\/ca-int\.crl", /,
	'log: revoked intermediate');
like($log, qr/\[error\] .*access forbidden by mtls: crl_missing, subject: "CN=deep,O=Example", serial: 3002, by "\Q$d\E\/int\.crl", /,
	'log: CRL missing');
like($log, qr/\[error\] .*access forbidden by mtls: crl_stale, subject: "CN=alice,O=Example", serial: 1002, by "\Q$d\E\/stale\.crl", /,
	'log: CRL stale');

###############################################################################

sub get {
	my ($uri, $cert, $port) = @_;

	$cert = "$d/$cert" if defined $cert;

	return outcome(https_get(port($port // 8443), $uri, $cert));
}

# a new CRL made with "openssl ca -gencrl", put in place atomically

sub update {
	my ($t, $name, %o) = @_;

	my $file = $pki->crl("$name.next", %o);
	Mtls::write_atomic("$d/$name", $t->read_file("$name.next"));
	unlink $file;
}

sub pem {
	my ($der) = @_;
	return "-----BEGIN X509 CRL-----\n" . encode_base64($der)
		. "-----END X509 CRL-----\n";
}

sub rfc3339 {
	my ($epoch) = @_;
	return POSIX::strftime('%Y-%m-%dT%H:%M:%SZ', gmtime($epoch));
}

# "nginx -t" of a server with the given directive

sub check {
	my ($t, $directive, $ca) = @_;

	$ca //= 'ssl_client_certificate cas.crt;';

	return nginx_t($t, <<"EOF");

%%TEST_GLOBALS%%

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    server {
        listen       127.0.0.1:%%PORT_8451%% ssl;
        server_name  localhost;

        ssl_certificate localhost.crt;
        ssl_certificate_key localhost.key;
        $ca
        ssl_verify_client on;

        $directive
    }
}

EOF
}

###############################################################################
