#!/usr/bin/perl

# Tests for the mtls module: "nginx -s reload".  A CRL older than the one in
# force is refused by a reload as the live loader refuses it (found by
# scripts/soak: a reload with a replayed CRL in place un-revoked a
# certificate); the same CRL and a newer one are accepted.  Worker 0 shutting
# down while its loader timer fires (found by scripts/sanitize: the timer's
# event leaked).  "nginx -s" with a broken file in place.

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
	->plan(20);

$t->write_file_expand('nginx.conf', <<'EOF');

%%TEST_GLOBALS%%

daemon off;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    mtls_reload_interval 200ms;

    add_header X-Decision $mtls_decision always;
    add_header X-Reason $mtls_reason always;

    server {
        listen       127.0.0.1:%%PORT_8443%% ssl;
        server_name  localhost;

        ssl_certificate localhost.crt;
        ssl_certificate_key localhost.key;
        ssl_client_certificate ca.crt;
        ssl_verify_client on;

        mtls_crl ca.crl;

        location / {
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
$pki->leaf('alice', ca => 'ca', subj => '/O=Example/CN=alice');
$pki->leaf('bob', ca => 'ca', subj => '/O=Example/CN=bob');

$t->write_file('ok', "ok\n");

$pki->crl('ca.crl', ca => 'ca', number => 1);

$t->run();

###############################################################################

is(get('bob'), '200 allow', 'not revoked');

update($t, revoke => [ 'bob' ], number => 3);

is(get('bob'), '403 deny revoked', 'revoked by CRL 3');

# the older CRL is refused by the loader, then by a reload

my $mark = Mtls::log_mark($t);
update($t, number => 2);

like(Mtls::wait_log($t, $mark, qr/ca\.crl/), qr/older than the one in force/,
	'loader: older CRL refused');
is(get('bob'), '403 deny revoked', 'loader: still revoked');

my @workers = Mtls::workers($t);

$mark = Mtls::log_mark($t);
Mtls::reload($t);

like(Mtls::wait_log($t, $mark, qr/\[emerg\]/),
	qr/\[emerg\] .*mtls: CRL #1 in "\Q$d\E\/ca\.crl" \("CN=Test CA,O=Example"\) is older than the one in force \(CRL number 2, in force 3\)$/,
	'reload: older CRL refused');
is(join(' ', sort(Mtls::workers($t))), join(' ', sort @workers),
	'reload: old workers go on');
is(get('bob'), '403 deny revoked', 'reload: still revoked');
is(get('alice'), '200 allow', 'reload: other certificate');

# the CRL in force, then a newer one, are accepted by a reload

update($t, revoke => [ 'bob' ], number => 3);
Mtls::reload($t);

isnt(join(' ', sort(Mtls::workers($t))), join(' ', sort @workers),
	'reload: same CRL accepted');
is(get('bob'), '403 deny revoked', 'reload: same CRL, revoked');

@workers = Mtls::workers($t);
$pki->crl('next.crl', ca => 'ca', number => 4);
Mtls::write_atomic("$d/ca.crl", $t->read_file('next.crl'));
Mtls::reload($t);

isnt(join(' ', sort(Mtls::workers($t))), join(' ', sort @workers),
	'reload: newer CRL accepted');
is(get('bob'), '200 allow', 'reload: newer CRL, not revoked');

# worker 0 shuts down gracefully with a request still being read: its
# loader timer fires meanwhile, and is not armed again; the worker answers,
# then exits (under scripts/sanitize, without leaking the timer's event)

my ($old) = Mtls::workers($t);
my $s = Mtls::connect_tls(port => port(8443), cert => "$d/bob");
$s->print("GET / HTTP/1.1\x0d\x0aHost: localhost\x0d\x0a") if $s;

$mark = Mtls::log_mark($t);
Mtls::reload($t);
select undef, undef, undef, 0.6;

my $r;
if ($s) {
	$s->print("Connection: close\x0d\x0a\x0d\x0a");
	local $/;
	$r = <$s>;
}

is(outcome($r), '200 allow', 'shutdown: request answered by the old worker');
like(Mtls::wait_log($t, $mark, qr/worker process $old exited/),
	qr/worker process $old exited with code 0$/, 'shutdown: old worker exits');

# a broken file does not keep "nginx -s" from signalling the master (the
# signalling process parses the configuration to find the pid file); a
# reload with it is refused by the master, which keeps the data in force
# (the signaller's output is checked, not its exit code: under
# scripts/sanitize, LeakSanitizer sets it for nginx's own leaks)

Mtls::write_atomic("$d/ca.crl", "not a CRL\n");
$mark = Mtls::log_mark($t);
my $out = `$Test::Nginx::NGINX -p $d/ -c nginx.conf -e $d/error.log -s reopen 2>&1`;
unlike($out, qr/\[emerg\]/, 'signaller: no error with a broken CRL file');
like(Mtls::wait_log($t, $mark, qr/reopening logs/), qr/reopening logs/,
	'signaller: master reopened its logs');

@workers = Mtls::workers($t);
$mark = Mtls::log_mark($t);
$out = `$Test::Nginx::NGINX -p $d/ -c nginx.conf -e $d/error.log -s reload 2>&1`;
unlike($out, qr/\[emerg\]/, 'signaller: reload sent');
like(Mtls::wait_log($t, $mark, qr/\[emerg\]/), qr/\[emerg\] .*ca\.crl/,
	'signaller: the master refuses the reload');
is(get('bob'), '200 allow', 'signaller: data in force kept');
is(join(' ', sort(Mtls::workers($t))), join(' ', sort @workers),
	'signaller: workers go on');

###############################################################################

sub get {
	my ($cert) = @_;
	return outcome(https_get(port(8443), '/', "$d/$cert"));
}

# a CRL written atomically over ca.crl

sub update {
	my ($t, %o) = @_;

	my $mark = Mtls::log_mark($t);
	$pki->crl('next.crl', ca => 'ca', %o);
	Mtls::write_atomic("$d/ca.crl", $t->read_file('next.crl'));
	Mtls::wait_log($t, $mark, qr/mtls: .*ca\.crl/);
}

###############################################################################
