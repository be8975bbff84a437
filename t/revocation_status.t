#!/usr/bin/perl

# Tests for the mtls module: mtls_status.  Each revocation source with what
# it holds, its load time and last error; counters of decisions by reason,
# exact and summed over several workers; the Prometheus text format; the
# table files in /dev/shm, there while nginx runs and gone once it stops.

###############################################################################

use warnings;
use strict;

use Test::More;

BEGIN { use FindBin; chdir($FindBin::Bin); }

use Test::Nginx;
use Mtls;

use POSIX ();

###############################################################################

select STDERR; $| = 1;
select STDOUT; $| = 1;

eval { require JSON::PP; };
plan(skip_all => 'JSON::PP not installed') if $@;

my $t = Test::Nginx->new()->has(qw/http http_ssl/)->has_daemon('openssl')
	->plan(45);

my $conf = <<'EOF';

%%TEST_GLOBALS%%

daemon off;
worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    mtls_reload_interval 200ms;

    ssl_certificate localhost.crt;
    ssl_certificate_key localhost.key;

    add_header X-Decision $mtls_decision always;
    add_header X-Reason $mtls_reason always;
    add_header X-Pid $pid always;

    server {
        listen       127.0.0.1:%%PORT_8443%% ssl reuseport;
        server_name  localhost;

        ssl_client_certificate cas.crt;
        ssl_verify_client optional_no_ca;

        mtls_crl ca.crl;
        mtls_deny_list deny.txt;

        location /a {
            try_files /ok =404;
        }

        location /again {
            mtls_deny_list deny.txt;
            try_files /ok =404;
        }

        location /cn {
            mtls_allow_cn alice;
            try_files /ok =404;
        }

        location /serial {
            mtls_deny_serial 1005;
            try_files /ok =404;
        }

        location /issuer {
            mtls_issuer "CN=Nobody";
            try_files /ok =404;
        }

        location /late {
            mtls_deny_list late.txt optional;
            try_files /ok =404;
        }

        location /off {
            mtls off;
            try_files /ok =404;
        }

        location /idx/ {
            index index.html;
        }
    }

    server {
        listen       127.0.0.1:%%PORT_8444%% ssl;
        server_name  localhost;

        ssl_client_certificate cas.crt;
        ssl_verify_client optional_no_ca;

        mtls_crl stale.crl;

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

$t->write_file_expand('nginx.conf', $conf);

my $d = $t->testdir();
my $pki = Mtls::PKI->new($d);

$pki->ca('ca', subj => '/O=Example/CN=Test CA', serial => '0x10');
$pki->ca('int', ca => 'ca', subj => '/O=Example/CN=Int CA', serial => '0x11');
$pki->leaf('localhost', ca => 'ca', subj => '/CN=localhost',
	san => 'DNS:localhost', eku => 'serverAuth', serial => '0x2001');

my %serial = (alice => '0x1002', bob => '0x1003', carol => '0x1004',
	erin => '0x1005', dave => '0x1006');

$pki->leaf($_, ca => 'ca', subj => "/O=Example/CN=$_",
	serial => $serial{$_}) for sort keys %serial;
$pki->leaf('deep', ca => 'int', subj => '/O=Example/CN=deep',
	serial => '0x3002');
$pki->self_signed('self', subj => '/O=Example/CN=alice');

$t->write_file('cas.crt', $t->read_file('ca.crt') . $t->read_file('int.crt'));
$t->write_file('ok', "ok\n");
mkdir "$d/idx";
$t->write_file('idx/index.html', "index\n");

my $now = time();
my ($this, $next) = ($now - 3600, $now + 7 * 86400);

$pki->crl('ca.crl', ca => 'ca', revoke => [ 'bob' ], number => 5,
	lastupdate => asn1_time($this), nextupdate => asn1_time($next));
$pki->crl('stale.crl', ca => 'ca', number => 1,
	lastupdate => asn1_time($now - 2 * 86400),
	nextupdate => asn1_time($now - 86400));

$t->write_file('deny.txt', "# revoked\n1007\nsha256:"
	. der_fingerprint_sha256("$d/carol.crt") . "\n");

$t->run();

my $master = Mtls::master_pid($t);

###############################################################################

# sources

my $status = Mtls::mtls_status(port(8080));

is(ref $status, 'HASH', 'JSON');
is(join(' ', sort map { $_->{path} } @{$status->{sources} // []}),
	join(' ', map { "$d/$_" } qw/ca.crl deny.txt late.txt stale.crl/),
	'sources, each once');

my $src = Mtls::status_source($status, "$d/ca.crl");

is(join(' ', sort keys %{$src // {}}),
	'crls entries generation kind last_error last_error_at load_ms loaded_at loading optional path',
	'source fields');
is($src && join(' ', map { json_value($src->{$_}) } qw/kind optional
	generation entries last_error last_error_at/),
	'crl false 1 1 null null', 'CRL source');
ok($src && near($src->{loaded_at}, $now), 'CRL source: loaded at')
	or diag(explain($src && $src->{loaded_at}));

my $crl = $src && $src->{crls}[0];

is(join(' ', sort keys %{$crl // {}}),
	'entries issuer next_update number this_update', 'CRL fields');
is($crl && join(' ', map { json_value($crl->{$_}) } qw/issuer this_update
	next_update number entries/),
	join(' ', 'CN=Test CA,O=Example', rfc3339($this), rfc3339($next), 5, 1),
	'CRL');
is($src && scalar @{$src->{crls}}, 1, 'one CRL');

$src = Mtls::status_source($status, "$d/deny.txt");

is($src && join(' ', map { json_value($src->{$_}) } qw/kind optional
	generation entries last_error/),
	'deny_list false 1 2 null', 'deny list source');
is($src && scalar @{$src->{crls}}, 0, 'deny list: no CRLs');

$src = Mtls::status_source($status, "$d/late.txt");

is($src && join(' ', map { json_value($src->{$_}) } qw/kind optional
	generation entries loaded_at/),
	'deny_list true 0 0 null', 'optional source, missing');
ok($src && defined $src->{last_error} && defined $src->{last_error_at},
	'optional source, missing: last error');

###############################################################################

# counters: requests on new and on keep-alive connections, over 2 workers

my @r;

push @r, https_get(port(8443), '/a', "$d/alice") for 1 .. 4;

my $ka = Mtls::KeepAlive->new(port => port(8443), cert => "$d/alice");
push @r, $ka && $ka->get('/a'), $ka && $ka->get('/again');
push @r, $ka && $ka->get('/cn'), $ka && $ka->get('/off');

push @r, https_get(port(8443), '/a', "$d/bob") for 1 .. 3;
push @r, https_get(port(8443), '/a', "$d/carol"),
	https_get(port(8443), '/again', "$d/carol");
push @r, https_get(port(8443), '/a') for 1 .. 2;
push @r, https_get(port(8443), '/a', "$d/self");
push @r, https_get(port(8443), '/serial', "$d/erin");
push @r, https_get(port(8443), '/a', "$d/deep");
push @r, https_get(port(8444), '/', "$d/alice") for 1 .. 2;
push @r, https_get(port(8443), '/late', "$d/alice");
push @r, https_get(port(8443), '/issuer', "$d/alice");
push @r, https_get(port(8443), '/a', "$d/dave");

$ka = Mtls::KeepAlive->new(port => port(8443), cert => "$d/dave");
push @r, $ka && $ka->get('/cn'), $ka && $ka->get('/cn'),
	$ka && $ka->get('/off');

my %pids = map { (header($_, 'X-Pid') // 'none') => 1 } @r;
my %outcomes;
$outcomes{outcome($_)}++ for @r;

is(join(', ', map { "$_ x$outcomes{$_}" } sort keys %outcomes),
	'200 allow x8, 200 off x2, 403 deny crl_missing x1, '
	. '403 deny crl_stale x2, 403 deny deny_list_missing x1, '
	. '403 deny issuer x1, 403 deny no_cert x2, 403 deny not_allowed x2, '
	. '403 deny revoked x5, 403 deny serial_denied x1, '
	. '403 deny unverified x1',
	'requests made');
is(scalar(keys %pids), 2, 'requests served by both workers');

$status = Mtls::mtls_status(port(8080));

is_deeply($status && $status->{requests}, {
	allowed => 8,
	denied => {
		no_cert => 2, unverified => 1, bad_cert => 0, serial_denied => 1,
		revoked => 5, crl_missing => 1, crl_stale => 2,
		deny_list_missing => 1, issuer => 1, not_allowed => 2,
		ocsp_unavailable => 0, ocsp_unknown => 0,
	},
}, 'counters') or diag(explain($status && $status->{requests}));

# Prometheus

my $prom = Mtls::mtls_status(port(8080), uri => '/status?format=prometheus',
	raw => 1);

like($prom, qr/^Content-Type: text\/plain/mi, 'prometheus: content type');
like($prom, qr/^# TYPE mtls_requests_total counter$/m,
	'prometheus: counter type');
like($prom, qr/^mtls_requests_total\{decision="allow",reason=""\} 8$/m,
	'prometheus: allowed');
like($prom, qr/^mtls_requests_total\{decision="deny",reason="revoked"\} 5$/m,
	'prometheus: revoked');
like($prom, qr/^mtls_requests_total\{decision="deny",reason="crl_stale"\} 2$/m,
	'prometheus: stale');
like($prom, qr/^mtls_requests_total\{decision="deny",reason="bad_cert"\} 0$/m,
	'prometheus: zero');
is(scalar(() = $prom =~ /^mtls_requests_total\{decision="deny",/mg), 12,
	'prometheus: every reason');
like($prom, qr/^mtls_source_entries\{path="\Q$d\E\/ca\.crl",kind="crl"\} 1$/m,
	'prometheus: CRL entries');
like($prom, qr/^mtls_source_entries\{path="\Q$d\E\/deny\.txt",kind="deny_list"\} 2$/m,
	'prometheus: deny list entries');
like($prom, qr/^mtls_source_loading\{path="\Q$d\E\/ca\.crl",kind="crl"\} 0$/m,
	'prometheus: not loading');
like($prom, qr/^mtls_source_load_duration_seconds\{path="\Q$d\E\/ca\.crl",kind="crl"\} [\d.]+$/m,
	'prometheus: load duration');
like($prom, qr/^mtls_crl_next_update_timestamp_seconds\{path="\Q$d\E\/ca\.crl",issuer="CN=Test CA,O=Example"\} $next$/m,
	'prometheus: nextUpdate');

my $json = Mtls::mtls_status(port(8080), raw => 1);

like($json, qr/^Content-Type: application\/json/mi, 'JSON: content type');

# one request, one count, also through an internal redirect (index)

my $before = $status && $status->{requests}{allowed};
my $r = https_get(port(8443), '/idx/', "$d/alice");

is(outcome($r), '200 allow', 'index: allowed');
like($r, qr/index$/, 'index: served');

$status = Mtls::mtls_status(port(8080));

is($status && $status->{requests}{allowed}, $before + 1,
	'index: counted once');

###############################################################################

# a live update, then a failed one

my @tables = Mtls::shm_tables($master);

is(scalar @tables, 3, 'shm: a table per loaded source');

my $mark = Mtls::log_mark($t);
Mtls::write_atomic("$d/deny.txt", "1006\n1007\n1008\n");
Mtls::wait_log($t, $mark, qr/mtls: reloaded "\Q$d\E\/deny\.txt"/);

$status = Mtls::mtls_status(port(8080));
$src = Mtls::status_source($status, "$d/deny.txt");

is($src && join(' ', map { json_value($src->{$_}) } qw/generation entries
	last_error/), '2 3 null', 'updated: status');

my @updated = Mtls::shm_tables($master);

is(scalar @updated, 3, 'shm: old generation removed');
isnt(join(' ', @updated), join(' ', @tables), 'shm: new generation');

$mark = Mtls::log_mark($t);
Mtls::write_atomic("$d/deny.txt", "1006\nnot a serial\n");
Mtls::wait_log($t, $mark, qr/mtls: .*deny\.txt/);

$status = Mtls::mtls_status(port(8080));
$src = Mtls::status_source($status, "$d/deny.txt");

is($src && join(' ', map { json_value($src->{$_}) } qw/generation entries/),
	'2 3', 'failed update: status data unchanged');
like($src && $src->{last_error}, qr/deny list "\Q$d\E\/deny\.txt" line 2/,
	'failed update: last error');
ok($src && near($src->{last_error_at}, time()),
	'failed update: last error time');

$prom = Mtls::mtls_status(port(8080), uri => '/status?format=prometheus',
	raw => 1);

like($prom, qr/^mtls_source_last_error_timestamp_seconds\{path="\Q$d\E\/deny\.txt",kind="deny_list"\} \d+$/m,
	'prometheus: last error');

###############################################################################

# /dev/shm across reloads: a configuration that fails leaves nothing
# behind, one that works replaces the tables of the old one

$mark = Mtls::log_mark($t);
Mtls::write_atomic("$d/deny.txt", "1006\n1007\n1008\n");
Mtls::wait_log($t, $mark, qr/mtls: reloaded "\Q$d\E\/deny\.txt"/);

my @pre = Mtls::shm_tables($master);
my $good = $t->read_file('nginx.conf');
$t->write_file('nginx.conf', $good . "\nno_such_directive;\n");

$mark = Mtls::log_mark($t);
Mtls::reload($t);

like(Mtls::wait_log($t, $mark, qr/\[emerg\]/), qr/no_such_directive/,
	'failed reload');

# tables that a failed configuration left, reported once here and then
# left out of the checks below

my %pre = map { $_ => 1 } @pre;
my @leaked = grep { !$pre{$_} } Mtls::shm_tables($master);
my %leaked = map { $_ => 1 } @leaked;

is(join(' ', @leaked), '', 'shm: failed reload leaves no tables');

$t->write_file('nginx.conf', $good);
$t->write_file('deny.txt', "1006\n");
Mtls::reload($t);

# the old workers remove the old configuration's tables when they exit

my @current;

Mtls::wait_for(sub {
	@current = grep { !$leaked{$_} } Mtls::shm_tables($master);
	@current == 3 && !grep { $pre{$_} } @current;
});

is(scalar(grep { !$pre{$_} } @current), 3, 'shm: reload replaces the tables')
	or diag(join "\n", Mtls::shm_tables($master));

$status = Mtls::mtls_status(port(8080));
$src = Mtls::status_source($status, "$d/deny.txt");

is($src && "$src->{entries} " . json_value($src->{last_error}), '1 null',
	'reload: status of the new configuration');

is(scalar(grep { ((stat $_)[2] & 07777) == 0600 } @current), 3,
	'shm: tables readable by nginx only');

$t->stop();

is(join(' ', grep { !$leaked{$_} } Mtls::shm_tables($master)), '',
	'shm: removed on stop');

# what a failed reload left is not ours to keep: the test leaves nothing

unlink @leaked;

###############################################################################

# JSON values as text: null, true, false, numbers and strings

sub json_value {
	my ($v) = @_;
	return 'null' unless defined $v;
	return $v ? 'true' : 'false' if JSON::PP::is_bool($v);
	return "$v";
}

sub rfc3339 {
	my ($epoch) = @_;
	return POSIX::strftime('%Y-%m-%dT%H:%M:%SZ', gmtime($epoch));
}

# an RFC 3339 time within a minute of $epoch

sub near {
	my ($text, $epoch) = @_;

	return 0 unless defined $text
		&& $text =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)Z$/;

	my $e = Time::Local::timegm($6, $5, $4, $3, $2 - 1, $1);
	return abs($e - $epoch) <= 60;
}

###############################################################################
