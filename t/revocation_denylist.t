#!/usr/bin/perl

# Tests for the mtls module: mtls_deny_list, live.  Entries (serials in
# various spellings, SHA-256 fingerprints, comments), a revocation that
# reaches an open keep-alive connection, faults (corrupt, empty, missing
# file: the previous data stays in force), optional lists, the symbolic link
# swap of a Kubernetes volume, and inheritance.

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
	->plan(70);

$t->write_file_expand('nginx.conf', <<'EOF');

%%TEST_GLOBALS%%

daemon off;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    mtls_reload_interval 200ms;

    ssl_certificate localhost.crt;
    ssl_certificate_key localhost.key;

    add_header X-Decision $mtls_decision always;
    add_header X-Reason $mtls_reason always;
    add_header X-Conn $connection always;
    add_header X-Req $connection_requests always;

    server {
        listen       127.0.0.1:%%PORT_8443%% ssl;
        server_name  localhost;

        ssl_client_certificate ca.crt;
        ssl_verify_client optional_no_ca;

        location /forms {
            mtls_deny_list forms.txt;
            try_files /ok =404;
        }

        location /live {
            mtls_deny_list live.txt;
            try_files /ok =404;
        }

        location /late {
            mtls_deny_list late.txt optional;
            try_files /ok =404;
        }

        location /link {
            mtls_deny_list k8s/deny.txt;
            try_files /ok =404;
        }
    }

    server {
        listen       127.0.0.1:%%PORT_8444%% ssl;
        server_name  localhost;

        ssl_client_certificate ca.crt;
        ssl_verify_client optional_no_ca;

        mtls_deny_list server.txt;

        location /inherit {
            try_files /ok =404;
        }

        location /replace {
            mtls_deny_list loc.txt;
            try_files /ok =404;
        }

        location /two {
            mtls_deny_list loc.txt;
            mtls_deny_list server.txt;
            try_files /ok =404;
        }

        location /rules {
            mtls_allow_cn alice bob carol;
            try_files /ok =404;
        }

        location /off {
            mtls off;
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

my $d = $t->testdir();
my $pki = Mtls::PKI->new($d);

$pki->ca('ca', subj => '/O=Example/CN=Test CA');
$pki->leaf('localhost', ca => 'ca', subj => '/CN=localhost',
	san => 'DNS:localhost', eku => 'serverAuth', serial => '0x2001');

my %serial = (alice => '0x1002', bob => '0x80AB', carol => '0x1003',
	dave => '0x100', erin => '0x1004', frank => '0x1005',
	gina => '0x1006');

$pki->leaf($_, ca => 'ca', subj => "/O=Example/CN=$_",
	serial => $serial{$_}) for sort keys %serial;

$t->write_file('ok', "ok\n");

my $carol_fp = uc(der_fingerprint_sha256("$d/carol.crt"));
$carol_fp =~ s/(..)(?=.)/$1:/g;
my $erin_fp = der_fingerprint_sha256("$d/erin.crt");

$t->write_file('forms.txt',
	"# deny list for /forms\n"
	. "10:02\n"
	. "   00000080ab    # bob: leading zeros, lower case\n"
	. "\n"
	. "sha256:$carol_fp\n"
	. "sha256:$erin_fp   # erin\x0d\n"
	. "# 0100\n"
	. "\t1005\t# frank\n");

$t->write_file('live.txt', "# nothing revoked\n");
$t->write_file('server.txt', "1002\n");
$t->write_file('loc.txt', "80AB\n");

# a volume as Kubernetes mounts a Secret or ConfigMap: the file is a link
# through "..data", itself a link to the directory of the current version

mkdir "$d/k8s";
mkdir "$d/k8s/..v1";
$t->write_file('k8s/..v1/deny.txt', "# nothing revoked\n");
symlink('..v1', "$d/k8s/..data") or die "symlink: $!\n";
symlink('..data/deny.txt', "$d/k8s/deny.txt") or die "symlink: $!\n";

$t->run();

###############################################################################

# entries

is(get('/forms', 'alice'), '403 deny revoked', 'serial with colons');
is(get('/forms', 'bob'), '403 deny revoked',
	'serial with leading zeros, lower case, comment');
is(get('/forms', 'carol'), '403 deny revoked',
	'fingerprint upper case with colons');
is(get('/forms', 'erin'), '403 deny revoked',
	'fingerprint lower case, comment, CRLF');
is(get('/forms', 'frank'), '403 deny revoked', 'serial after a tab');
is(get('/forms', 'dave'), '200 allow', 'commented out');
is(get('/forms', 'gina'), '200 allow', 'not listed');
is(get('/forms'), '403 deny no_cert', 'no certificate');

my $status = Mtls::mtls_status(port(8080));
my $src = Mtls::status_source($status, "$d/forms.txt");

is($src && "$src->{kind} $src->{entries} $src->{generation}",
	'deny_list 5 1', 'status: forms kind, entries, generation');

###############################################################################

# live: one keep-alive connection, the deny list changes under it

my @r;
my $ka = Mtls::KeepAlive->new(port => port(8443), cert => "$d/alice");

push @r, $ka && $ka->get('/live');
is(outcome($r[-1]), '200 allow', 'live: allowed');

my $mark = Mtls::log_mark($t);
Mtls::write_atomic("$d/live.txt", "# revoked\n1002\n");

like(Mtls::wait_log($t, $mark, qr/mtls: reloaded/),
	qr/\[notice\] .*mtls: reloaded "\Q$d\E\/live\.txt", 1 entries in \d+ ms$/,
	'live: reload logged');

push @r, $ka && $ka->get('/live');
is(outcome($r[-1]), '403 deny revoked', 'live: revoked on the connection');

$mark = Mtls::log_mark($t);
Mtls::write_atomic("$d/live.txt", "# nothing revoked\n");
Mtls::wait_log($t, $mark, qr/mtls: reloaded "\Q$d\E\/live\.txt", 0 entries/);

push @r, $ka && $ka->get('/live');
is(outcome($r[-1]), '200 allow', 'live: removed, allowed again');

$mark = Mtls::log_mark($t);
Mtls::write_atomic("$d/live.txt", "10:02\n");
Mtls::wait_log($t, $mark, qr/mtls: reloaded "\Q$d\E\/live\.txt", 1 entries/);

push @r, $ka && $ka->get('/live');
is(outcome($r[-1]), '403 deny revoked', 'live: revoked again');

$status = Mtls::mtls_status(port(8080));
$src = Mtls::status_source($status, "$d/live.txt");
my $gen = $src && $src->{generation};

is($gen, 4, 'live: generation after 3 updates');

# a corrupt update: rejected, the previous data stays in force

$mark = Mtls::log_mark($t);
Mtls::write_atomic("$d/live.txt", "# oops\nzz\n");

like(Mtls::wait_log($t, $mark, qr/mtls: .*live\.txt/),
	qr/\[error\] .*mtls: deny list "\Q$d\E\/live\.txt" line 2: .*"zz".*, previous data stays in force$/,
	'corrupt: error logged');

push @r, $ka && $ka->get('/live');
is(outcome($r[-1]), '403 deny revoked', 'corrupt: still revoked');

$status = Mtls::mtls_status(port(8080));
$src = Mtls::status_source($status, "$d/live.txt");

like($src && $src->{last_error}, qr/line 2/, 'corrupt: status last error');
like($src && $src->{last_error_at}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
	'corrupt: status last error time');
is($src && "$src->{generation} $src->{entries}", "$gen 1",
	'corrupt: status generation and entries unchanged');

# an empty file (what a reader sees during a non-atomic write)

$mark = Mtls::log_mark($t);
Mtls::write_atomic("$d/live.txt", '');

like(Mtls::wait_log($t, $mark, qr/mtls: .*live\.txt/),
	qr/\[error\] .*mtls: deny list "\Q$d\E\/live\.txt" is empty, previous data stays in force$/,
	'empty: error logged');

push @r, $ka && $ka->get('/live');
is(outcome($r[-1]), '403 deny revoked', 'empty: still revoked');

# the file disappears

$mark = Mtls::log_mark($t);
unlink "$d/live.txt";

like(Mtls::wait_log($t, $mark, qr/mtls: .*live\.txt/),
	qr/\[error\] .*mtls: .*"\Q$d\E\/live\.txt".*, previous data stays in force$/,
	'missing: error logged');

push @r, $ka && $ka->get('/live');
is(outcome($r[-1]), '403 deny revoked', 'missing: still revoked');

$status = Mtls::mtls_status(port(8080));
$src = Mtls::status_source($status, "$d/live.txt");

like($src && $src->{last_error}, qr/live\.txt/, 'missing: status last error');

# a valid file again

$mark = Mtls::log_mark($t);
Mtls::write_atomic("$d/live.txt", "# nothing revoked\n");
Mtls::wait_log($t, $mark, qr/mtls: reloaded "\Q$d\E\/live\.txt", 0 entries/);

push @r, $ka && $ka->get('/live');
is(outcome($r[-1]), '200 allow', 'restored: allowed');

$status = Mtls::mtls_status(port(8080));
$src = Mtls::status_source($status, "$d/live.txt");

is($src && $src->{last_error}, undef, 'restored: no last error');
is($src && $src->{generation}, $gen + 1, 'restored: generation');

my %conn = map { header($_, 'X-Conn') // 'none' => 1 } @r;

is(join(' ', sort keys %conn), header($r[0], 'X-Conn'),
	'live: one connection');
is(join(' ', map { header($_, 'X-Req') // 'none' } @r),
	join(' ', 1 .. 8), 'live: requests on the connection');

$ka->close() if $ka;

###############################################################################

# optional, missing at start: denied until a valid file arrives

like($t->read_file('error.log'),
	qr/\[warn\] .*mtls: .*"\Q$d\E\/late\.txt".*denied until a valid file arrives/,
	'optional: missing at start logged');
is(get('/late', 'alice'), '403 deny deny_list_missing', 'optional: missing');
is(get('/late', 'bob'), '403 deny deny_list_missing',
	'optional: missing, other certificate');
is(get('/late'), '403 deny no_cert', 'optional: no certificate');

$status = Mtls::mtls_status(port(8080));
$src = Mtls::status_source($status, "$d/late.txt");

is($src && join(' ', map { $src->{$_} // 'null' } qw/kind generation entries
	loaded_at/), 'deny_list 0 0 null', 'optional: status');
ok($src && $src->{optional}, 'optional: status optional');
ok($src && defined $src->{last_error}, 'optional: status last error');

# an invalid file arrives: still denied

$mark = Mtls::log_mark($t);
Mtls::write_atomic("$d/late.txt", "12#3\n");

like(Mtls::wait_log($t, $mark, qr/mtls: .*late\.txt/),
	qr/\[error\] .*mtls: deny list "\Q$d\E\/late\.txt" line 1: .*previous data stays in force$/,
	'optional: invalid file logged');
is(get('/late', 'alice'), '403 deny deny_list_missing',
	'optional: invalid file');

# a valid one

$mark = Mtls::log_mark($t);
Mtls::write_atomic("$d/late.txt", "80ab\n");

like(Mtls::wait_log($t, $mark, qr/mtls: reloaded "\Q$d\E\/late\.txt"/),
	qr/\[notice\] .*, 1 entries in \d+ ms$/, 'optional: valid file logged');
is(get('/late', 'alice'), '200 allow', 'optional: valid file, allowed');
is(get('/late', 'bob'), '403 deny revoked', 'optional: valid file, revoked');

###############################################################################

# Kubernetes volume: "..data" swapped atomically to another version

is(get('/link', 'alice'), '200 allow', 'symlink: allowed');

mkdir "$d/k8s/..v2";
$t->write_file('k8s/..v2/deny.txt', "1002\n");

$mark = Mtls::log_mark($t);
swap_data('..v2');

like(Mtls::wait_log($t, $mark, qr/mtls: reloaded/),
	qr/mtls: reloaded "\Q$d\E\/k8s\/deny\.txt", 1 entries in \d+ ms$/,
	'symlink: swap logged');
is(get('/link', 'alice'), '403 deny revoked', 'symlink: revoked');
is(get('/link', 'bob'), '200 allow', 'symlink: other certificate');

# the same content in a new version directory, the old one removed, as
# the kubelet does; then a version that revokes bob instead

mkdir "$d/k8s/..v3";
$t->write_file('k8s/..v3/deny.txt', "80AB\n");

$mark = Mtls::log_mark($t);
swap_data('..v3');
system('rm', '-rf', "$d/k8s/..v1", "$d/k8s/..v2");

like(Mtls::wait_log($t, $mark, qr/mtls: .*k8s/),
	qr/mtls: reloaded "\Q$d\E\/k8s\/deny\.txt", 1 entries in \d+ ms$/,
	'symlink: second swap logged');
is(get('/link', 'alice'), '200 allow', 'symlink: second swap, allowed');
is(get('/link', 'bob'), '403 deny revoked', 'symlink: second swap, revoked');

###############################################################################

# inheritance: a location's lists replace the server's; other families
# leave them alone

is(get('/inherit', 'alice', 8444), '403 deny revoked', 'inherit: revoked');
is(get('/inherit', 'bob', 8444), '200 allow', 'inherit: allowed');
is(get('/replace', 'alice', 8444), '200 allow', 'replace: server list gone');
is(get('/replace', 'bob', 8444), '403 deny revoked', 'replace: own list');
is(get('/two', 'alice', 8444), '403 deny revoked', 'two lists: first');
is(get('/two', 'bob', 8444), '403 deny revoked', 'two lists: second');
is(get('/two', 'carol', 8444), '200 allow', 'two lists: neither');
is(get('/rules', 'alice', 8444), '403 deny revoked',
	'identity rules: list inherited');
is(get('/rules', 'carol', 8444), '200 allow', 'identity rules: allowed');
is(get('/rules', 'dave', 8444), '403 deny not_allowed',
	'identity rules: not allowed');
is(get('/off', 'alice', 8444), '200 off', 'off');

###############################################################################

# start-up: a missing or invalid file is an [emerg] naming the file, unless
# optional

$t->write_file('bad.txt', "1A\nnot-a-serial\n");
$t->write_file('empty.txt', '');

my $out = check($t, 'mtls_deny_list missing.txt;');

like($out, qr/\[emerg\] .*mtls: .*"\Q$d\E\/missing\.txt"/,
	'start: missing file');
unlike($out, qr/test is successful/, 'start: missing file fails');

like(check($t, 'mtls_deny_list bad.txt;'),
	qr/\[emerg\] .*mtls: deny list "\Q$d\E\/bad\.txt" line 2: /,
	'start: bad line');
like(check($t, 'mtls_deny_list empty.txt;'),
	qr/\[emerg\] .*mtls: deny list "\Q$d\E\/empty\.txt" is empty/,
	'start: empty file');

$out = check($t, 'mtls_deny_list missing.txt optional;');

like($out, qr/\[warn\] .*mtls: .*"\Q$d\E\/missing\.txt".*denied until a valid file arrives/,
	'start: optional missing file warns');
like($out, qr/test is successful/, 'start: optional missing file passes');

like(check($t, 'mtls_deny_list forms.txt optionally;'),
	qr/\[emerg\] .*"mtls_deny_list" directive has invalid value "optionally"/,
	'start: bad parameter');

###############################################################################

# the log of denials names the source

$t->stop();

my $log = $t->read_file('error.log');

like($log, qr/\[error\] .*access forbidden by mtls: revoked, subject: "CN=alice,O=Example", serial: 1002, by "\Q$d\E\/forms\.txt", client: /,
	'log: revoked by a deny list');
like($log, qr/access forbidden by mtls: deny_list_missing, subject: "CN=alice,O=Example", serial: 1002, by "\Q$d\E\/late\.txt"/,
	'log: deny list missing');
like($log, qr/access forbidden by mtls: revoked, .*serial: 80AB, by "\Q$d\E\/loc\.txt", .*request: "GET \/replace /,
	'log: revoked by the location list');

###############################################################################

sub get {
	my ($uri, $cert, $port) = @_;

	$cert = "$d/$cert" if defined $cert;

	return outcome(https_get(port($port // 8443), $uri, $cert));
}

# replaces k8s/..data atomically by a link to $version

sub swap_data {
	my ($version) = @_;

	system('ln', '-s', $version, "$d/k8s/..data_tmp") == 0
		or die "ln failed\n";
	system('mv', '-T', "$d/k8s/..data_tmp", "$d/k8s/..data") == 0
		or die "mv failed\n";
}

# "nginx -t" of a server with the given directive

sub check {
	my ($t, $directive) = @_;

	return nginx_t($t, <<"EOF");

%%TEST_GLOBALS%%

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    server {
        listen       127.0.0.1:%%PORT_8445%% ssl;
        server_name  localhost;

        ssl_certificate localhost.crt;
        ssl_certificate_key localhost.key;
        ssl_client_certificate ca.crt;
        ssl_verify_client on;

        location / {
            $directive
        }
    }
}

EOF
}

###############################################################################
