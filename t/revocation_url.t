#!/usr/bin/perl

# Tests for the mtls module: CRLs and deny lists fetched from URLs, against
# an HTTP server on loopback that the test runs.  Conditional requests, a
# certificate revoked at the CA while a client holds a keep-alive and an
# HTTP/2 connection and resumes a session, a server that fails in every way
# (500, an HTML page, a truncated or huge body, a redirect loop, too slow, no
# answer, down) without any revocation lost or any worker waiting, a
# restart with the server down that runs from the kept copy, the first start
# without network nor copy, and the parameters' errors.

###############################################################################

use warnings;
use strict;

use Test::More;

use Time::HiRes qw/time sleep/;

BEGIN { use FindBin; chdir($FindBin::Bin); }

use Test::Nginx;
use Mtls;
use MtlsHttp;

###############################################################################

select STDERR; $| = 1;
select STDOUT; $| = 1;

my $t = Test::Nginx->new()
	->has(qw/http http_ssl http_v2 socket_ssl_reused/)
	->has_daemon('openssl')->plan(57);

$t->write_file_expand('nginx.conf', <<'EOF');

%%TEST_GLOBALS%%

daemon off;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    mtls_reload_interval 200ms;
    mtls_cache_dir %%TESTDIR%%/cache;

    ssl_certificate localhost.crt;
    ssl_certificate_key localhost.key;
    ssl_session_cache shared:SSL:1m;

    add_header X-Decision $mtls_decision always;
    add_header X-Reason $mtls_reason always;
    add_header X-Reused $ssl_session_reused always;

    server {
        listen       127.0.0.1:%%PORT_8443%% ssl http2;
        server_name  localhost;

        ssl_client_certificate ca.crt;
        ssl_verify_client optional_no_ca;

        mtls_crl http://127.0.0.1:%%PORT_8081%%/ca.crl interval=1s timeout=2s;

        location / {
            try_files /ok =404;
        }

        location /list {
            mtls_deny_list http://127.0.0.1:%%PORT_8081%%/deny.txt interval=1s;
            try_files /ok =404;
        }
    }

    server {
        listen       127.0.0.1:%%PORT_8444%% ssl;
        server_name  localhost;

        ssl_client_certificate ca.crt;
        ssl_verify_client optional_no_ca;

        mtls_crl http://127.0.0.1:%%PORT_8081%%/dyn interval=1s timeout=3s
                 max_size=64k;

        location / {
            try_files /ok =404;
        }
    }

    server {
        listen       127.0.0.1:%%PORT_8445%% ssl;
        server_name  localhost;

        ssl_client_certificate ca.crt;
        ssl_verify_client optional_no_ca;

        mtls_crl http://127.0.0.1:%%PORT_8082%%/none.crl optional
                 interval=1s timeout=1s;

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

my $d = $t->testdir();
my $pki = Mtls::PKI->new($d);

$pki->ca('ca', subj => '/O=Example/CN=Test CA');
$pki->leaf('localhost', ca => 'ca', subj => '/CN=localhost',
	san => 'DNS:localhost', eku => 'serverAuth', serial => '0x2001');
$pki->leaf('alice', ca => 'ca', subj => '/CN=alice', serial => '0x1002');
$pki->leaf('bob', ca => 'ca', subj => '/CN=bob', serial => '0x1003');
$pki->leaf('carol', ca => 'ca', subj => '/CN=carol', serial => '0x1004');

$t->write_file('ok', "ok\n");

mkdir("$d/www") or die "mkdir: $!\n";
$pki->crl('www/ca.crl', ca => 'ca', revoke => [ 'bob' ], number => 1);
$pki->crl('www/dyn.crl', ca => 'ca', revoke => [ 'bob' ], number => 1);
Mtls::spew("$d/www/deny.txt", "1004\n");
Mtls::spew("$d/www/mode", "good");

my $http = MtlsHttp::start(port(8081), "$d/www");

$t->run();

###############################################################################

my $status;
my $src = sub {
	my ($url) = @_;
	$status = Mtls::mtls_status(port(8080));
	for my $s (@{$status->{sources} // []}) {
		return $s if ($s->{url} // '') eq $url;
	}
	return undef;
};

my $crl_url = 'http://127.0.0.1:' . port(8081) . '/ca.crl';
my $dyn_url = 'http://127.0.0.1:' . port(8081) . '/dyn';

# fetched at start

is(outcome(https_get(port(8443), '/', "$d/alice")), '200 allow',
	'alice allowed, CRL from a URL');
is(outcome(https_get(port(8443), '/', "$d/bob")), '403 deny revoked',
	'bob revoked by the fetched CRL');
is(outcome(https_get(port(8443), '/list', "$d/carol")),
	'403 deny revoked', 'carol in the fetched deny list');
is(outcome(https_get(port(8443), '/list', "$d/alice")), '200 allow',
	'alice not in the fetched deny list');
like(outcome(https_get(port(8445), '/', "$d/alice")), qr/^403 deny/,
	'optional URL never fetched: its server\'s requests denied');

my $s = $src->($crl_url);
ok($s, 'status lists the URL') or diag(explain($status));
# 304 if the loader asked again already
like($s->{fetch}{http_status}, qr/^(200|304)\z/, 'status: HTTP status');
ok($s->{fetch}{etag} || $s->{fetch}{last_modified}, 'status: validators');
ok($s->{fetch}{bytes} > 0, 'status: bytes');
is($s->{fetch}{failures}, 0, 'status: no failures');
ok(-s $s->{path} && $s->{path} =~ m{^\Q$d\E/cache/}, 'copy kept on disk');

my $late = $src->('http://127.0.0.1:' . port(8082) . '/none.crl');
like($late->{last_error} // '', qr/cannot fetch/, 'down server: error shown');

# conditional requests: the loader asks again with the validators it has

ok(Mtls::wait_for(sub { ($src->($crl_url)->{fetch}{http_status} // 0) == 304 }),
	'304 on a refetch');
like(Mtls::slurp("$d/www/requests.log"), qr{^/ca\.crl inm="}m,
	'refetch is conditional');

my $prom = Mtls::mtls_status(port(8080), uri => '/status?format=prometheus',
	raw => 1);
like($prom, qr/^mtls_fetch_failures\{url="\Q$crl_url\E",kind="crl"\} 0$/m,
	'prometheus: failures');
like($prom, qr/^mtls_fetch_info\{url="\Q$crl_url\E",kind="crl",etag="/m,
	'prometheus: validators');

# revoked at the CA while connections are open: denied on the next request
# of a keep-alive and an HTTP/2 connection, and on resumption

my $ka = Mtls::KeepAlive->new(port => port(8443), cert => "$d/alice");
is($ka->get('/')->{status}, 200, 'keep-alive: allowed before');
my $h2 = Mtls::H2->new(port => port(8443), cert => "$d/alice");
is($h2->get('/')->{status}, 200, 'h2: allowed before');
my $ctx = Mtls::client_ctx("$d/alice", 'TLSv1_2');
Mtls::resumed_get(port(8443), $ctx, '/');
my $r = Mtls::resumed_get(port(8443), $ctx, '/');
is(outcome($r) . ' ' . header($r, 'X-Reused'), '200 allow r',
	'resumed session allowed before');

$pki->crl('ca.crl.next', ca => 'ca', revoke => [ 'bob', 'alice' ],
	number => 2);
my $revoked_at = time();
Mtls::write_atomic("$d/www/ca.crl", Mtls::slurp("$d/ca.crl.next"));

ok(Mtls::wait_for(sub { ($ka->get('/') // {})->{status} == 403 }, 6),
	'keep-alive: denied after the CA revoked alice');
my $took = time() - $revoked_at;
ok($took < 4, "within the refresh interval ($took s)");
is($h2->get('/')->{headers}{'x-reason'}, 'revoked', 'h2: denied');
$r = Mtls::resumed_get(port(8443), $ctx, '/');
is(outcome($r), '403 deny revoked', 'resumed session: denied');
is(header($r, 'X-Reused'), 'r', 'the session was resumed');
$h2->close();

# a server that fails in every way: no revocation lost, no worker waits

sub dyn_error {
	my ($mode, $re) = @_;
	my $before = $src->($dyn_url)->{fetch}{failures} // 0;
	Mtls::spew("$d/www/mode", $mode);
	my $got = Mtls::wait_for(sub {
		my $s = $src->($dyn_url);
		$s->{fetch}{failures} > $before ? $s : undef;
	}, 8);
	like($got ? $got->{last_error} : '', $re, "$mode: error shown");
	is(outcome(https_get(port(8444), '/', "$d/bob")), '403 deny revoked',
		"$mode: bob still revoked");
}

dyn_error('500', qr/status 500/);
dyn_error('html', qr/CRL/);
dyn_error('truncated', qr/truncated/);
dyn_error('huge', qr/larger than 65536 bytes/);
dyn_error('loop', qr/redirects/);
dyn_error('empty', qr/cannot fetch/);

# slow: while the loader waits, requests are served at once

Mtls::spew("$d/www/mode", 'slow');
my $slowest = 0;
for (1 .. 10) {
	my $t0 = time();
	https_get(port(8444), '/', "$d/alice") =~ /^HTTP\/1.1 200/ or last;
	my $dt = time() - $t0;
	$slowest = $dt if $dt > $slowest;
	sleep(0.2);
}
# A worker that waited on the fetch would take up to its 3 s timeout.
ok($slowest < 1.5, "requests served while the loader waits ($slowest s)");
ok(Mtls::wait_for(sub { ($src->($dyn_url)->{last_error} // '') =~ /timed out/ }, 12),
	'slow: timed out');
is(outcome(https_get(port(8444), '/', "$d/bob")), '403 deny revoked',
	'slow: bob still revoked');

Mtls::spew("$d/www/mode", 'good');
ok(Mtls::wait_for(sub { ($src->($dyn_url)->{fetch}{failures} // 1) == 0 }, 12),
	'recovered: failures back to 0');

# an older CRL at the URL is refused

$pki->crl('www/ca.crl', ca => 'ca', revoke => [ 'bob' ], number => 1);
ok(Mtls::wait_for(sub { ($src->($crl_url)->{last_error} // '') =~ /older|number/i }),
	'older CRL refused') or diag(explain($src->($crl_url)));
is(outcome(https_get(port(8443), '/', "$d/alice")), '403 deny revoked',
	'older CRL: alice still revoked');

# a restart with the server down runs from the copy kept

$t->stop();
MtlsHttp::stop($http);

my $mark = Mtls::log_mark($t);
$t->run();

ok(Mtls::wait_log($t, $mark, qr/starting from the copy kept/),
	'restart: kept copy used');
is(outcome(https_get(port(8443), '/', "$d/alice")), '403 deny revoked',
	'restart: alice still revoked');
is(outcome(https_get(port(8443), '/', "$d/carol")), '200 allow',
	'restart: carol allowed');
is(outcome(https_get(port(8443), '/list', "$d/carol")), '403 deny revoked',
	'restart: deny list from its copy');
ok(Mtls::wait_for(sub { ($src->($crl_url)->{fetch}{failures} // 0) > 0 }),
	'restart: the loader keeps trying');

# the first start without network nor copy

my $conf = <<'EOF';
%%TEST_GLOBALS%%
events {
}
http {
    %%TEST_GLOBALS_HTTP%%
    mtls_cache_dir %%TESTDIR%%/empty;
    server {
        listen       127.0.0.1:%%PORT_8446%% ssl;
        ssl_certificate localhost.crt;
        ssl_certificate_key localhost.key;
        ssl_client_certificate ca.crt;
        ssl_verify_client on;
        mtls_crl http://127.0.0.1:%%PORT_8082%%/ca.crl PARAMS;
    }
}
EOF

my $check = sub {
	my ($params) = @_;
	(my $c = $conf) =~ s/PARAMS/$params/;
	return nginx_t($t, $c);
};

like($check->('timeout=1s'),
	qr/\[emerg\].*cannot fetch.*no copy kept/,
	'no network, no copy: emerg');
like($check->('timeout=1s optional'), qr/test is successful/,
	'no network, no copy, optional: starts');
like($check->('interval=soon'),
	qr/\[emerg\].*"interval=soon": invalid time/, 'bad interval');
like($check->('max_size=-1'), qr/\[emerg\].*invalid size/, 'bad size');
like($check->('retries=3'), qr/\[emerg\].*unknown parameter/,
	'unknown parameter');
like($check->('ca=' . "$d/none.pem optional"),
	qr/test is successful/, 'a missing CA file is an error of the fetch');

# the example configuration, with the server up

{
	my $ex = Mtls::slurp('../nginx-conf/crl-from-url.conf');
	mkdir("$d/ex");
	mkdir("$d/ex/certs");
	Mtls::spew("$d/ex/ca.crt", Mtls::slurp("$d/ca.crt"));
	Mtls::spew("$d/ex/certs/api.example.com.chain.crt",
		Mtls::slurp("$d/localhost.crt"));
	Mtls::spew("$d/ex/certs/api.example.com.key",
		Mtls::slurp("$d/localhost.key"));
	$ex =~ s/%%PKI%%/$d\/ex/g;
	$ex =~ s/%%PORT%%/'127.0.0.1:' . port(8446)/ge;
	$ex =~ s/%%CRL_URL%%/$crl_url/g;
	$ex =~ s{%%DENY_URL%%}{http://127.0.0.1:@{[port(8081)]}/deny.txt}g;
	$ex =~ s{/var/cache/nginx/mtls}{$d/ex/cache};
	$t->write_file('crl-from-url.conf', $ex);

	my $http2 = MtlsHttp::start(port(8081), "$d/www");
	like(nginx_t($t, <<'EOF', 'example.conf'), qr/test is successful/,
%%TEST_GLOBALS%%
events {
}
http {
    %%TEST_GLOBALS_HTTP%%
    include crl-from-url.conf;
}
EOF
		'nginx-conf/crl-from-url.conf');
	MtlsHttp::stop($http2);
}

my $master = Mtls::master_pid($t);
ok(Mtls::shm_tables($master, all => 1) == 6, 'tables and summaries in /dev/shm');
$t->stop();
is(join(' ', Mtls::shm_tables($master, all => 1)), '',
	'stop: no table nor summary left');

unlike(Mtls::slurp("$d/error.log"), qr/\[(alert|crit|emerg)\]/, 'no alerts');

###############################################################################
