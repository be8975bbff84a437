#!/usr/bin/perl

# Tests for the mtls module: CRLs discovered from the CRL Distribution Points
# of client certificates and their intermediates (mtls_crl_cdp), fetched
# from an HTTP server on loopback that the test runs and that logs every
# path it is asked for.  The first request before the CRL is loaded (denied,
# or passed under "optional" with a warning, once per connection), a CDP
# URL outside the allowed prefixes or with a dot segment never fetched, the
# cap (also across reloads), revocation at the CA picked up on an open
# keep-alive connection, the status page, a restart with the server down
# that starts from the kept copies, a stale discovered CRL within and past
# mtls_crl_grace, and the errors of the directives at "nginx -t".

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

my $t = Test::Nginx->new()->has(qw/http http_ssl/)
	->has_daemon('openssl')->plan(78);

my $nginx_conf = <<'EOF';

%%TEST_GLOBALS%%

daemon off;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    mtls_reload_interval 200ms;
    mtls_cache_dir %%TESTDIR%%/cache;
    mtls_crl_cdp_allow http://127.0.0.1:%%PORT_8081%%/crl/ interval=1s
                       timeout=2s;
    mtls_crl_cdp_max 3;

    ssl_certificate localhost.crt;
    ssl_certificate_key localhost.key;

    add_header X-Decision $mtls_decision always;
    add_header X-Reason $mtls_reason always;

    server {
        listen       127.0.0.1:%%PORT_8443%% ssl;
        server_name  localhost;

        ssl_client_certificate cas.crt;
        ssl_verify_client optional_no_ca;
        ssl_verify_depth 2;

        mtls_crl_cdp on;

        location / {
            try_files /ok =404;
        }
    }

    server {
        listen       127.0.0.1:%%PORT_8444%% ssl;
        server_name  localhost;

        ssl_client_certificate cas.crt;
        ssl_verify_client optional_no_ca;
        ssl_verify_depth 2;

        mtls_crl_cdp optional;

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

$t->write_file_expand('nginx.conf', $nginx_conf);

my $d = $t->testdir();
my $pki = Mtls::PKI->new($d);
my $base = 'http://127.0.0.1:' . port(8081);

$pki->ca('ca', subj => '/O=Example/CN=Test Root CA');
$pki->ca('int', ca => 'ca', subj => '/O=Example/CN=Test Int CA',
	cdp => "$base/crl/root.crl");
# int2's CRL comes from olga's distribution point only; int3's never
$pki->ca('int2', ca => 'ca', subj => '/O=Example/CN=Test Int CA 2',
	cdp => "$base/crl/root.crl");
$pki->ca('int3', ca => 'ca', subj => '/O=Example/CN=Test Int CA 3',
	cdp => "$base/crl/root.crl");
$pki->leaf('localhost', ca => 'ca', subj => '/CN=localhost',
	san => 'DNS:localhost', eku => 'serverAuth');
Mtls::spew("$d/cas.crt", join('', map { Mtls::slurp("$d/$_.crt") }
	qw/ca int int2 int3/));

# an ldap:// point first, as Active Directory puts it: skipped
$pki->leaf('alice', ca => 'int', subj => '/CN=alice', serial => '0x1002',
	cdp => [ 'ldap://ldap.example.com/CN=Int', "$base/crl/int.crl" ]);
$pki->leaf('bob', ca => 'int', subj => '/CN=bob', serial => '0x1003',
	cdp => "$base/crl/int.crl");
$pki->leaf('olga', ca => 'int2', subj => '/CN=olga', serial => '0x1004',
	cdp => "$base/crl/olga.crl");
$pki->leaf('dave', ca => 'int3', subj => '/CN=dave', serial => '0x1005',
	cdp => "$base/crl/dave.crl");
$pki->leaf('eve', ca => 'int3', subj => '/CN=eve', serial => '0x1006',
	cdp => "$base/private/secret.crl");
$pki->leaf('mallory', ca => 'int3', subj => '/CN=mallory', serial => '0x1007',
	cdp => "$base/crl/../private/secret.crl");
$pki->leaf('nocdp', ca => 'int', subj => '/CN=nocdp', serial => '0x1008');

$t->write_file('ok', "ok\n");

mkdir("$d/www");
mkdir("$d/www/crl");
mkdir("$d/www/private");
$pki->crl('www/crl/int.crl', ca => 'int', revoke => [ 'bob' ], number => 1);
# olga.crl is not served yet: its URL is taken on, and fails to load
$pki->crl('www/crl/dave.crl', ca => 'int3', number => 1);
$pki->crl('www/crl/root.crl', ca => 'ca', number => 1);
$pki->crl('www/private/secret.crl', ca => 'int3', number => 1);

my $http = MtlsHttp::start(port(8081), "$d/www");

$t->run();

###############################################################################

my $requested = sub {
	-e "$d/www/requests.log" ? Mtls::slurp("$d/www/requests.log") : '';
};
my $fetched = sub {
	my ($path) = @_;
	return scalar grep { (split / /)[0] eq $path } split /\n/, $requested->();
};

my $status;
my $src = sub {
	my ($url) = @_;
	$status = Mtls::mtls_status(port(8080));
	for my $s (@{$status->{sources} // []}) {
		return $s if ($s->{url} // '') eq $url;
	}
	return undef;
};

# the first request, before any CRL is loaded: denied, and the URLs of the
# whole chain asked for at once

my $mark = Mtls::log_mark($t);
is(outcome(https_get(port(8443), '/', "$d/alice")), '403 deny crl_missing',
	'first request, CRL not loaded yet: crl_missing');
ok(Mtls::wait_log($t, $mark, qr/fetched "\Q$base\E\/crl\/int\.crl"/),
	'the leaf\'s CRL fetched');
ok(Mtls::wait_log($t, $mark, qr/fetched "\Q$base\E\/crl\/root\.crl"/),
	'the intermediate\'s CRL fetched');

# loaded: enforced

is(outcome(https_get(port(8443), '/', "$d/alice")), '200 allow',
	'alice allowed once loaded');
is(outcome(https_get(port(8443), '/', "$d/bob")), '403 deny revoked',
	'bob revoked by the discovered CRL');
like(Mtls::slurp("$d/error.log"),
	qr/access forbidden by mtls: revoked, subject: "CN=bob".*by "\Q$base\E\/crl\/int\.crl"/,
	'the denial names the URL');
is(outcome(https_get(port(8443), '/', "$d/nocdp")), '200 allow',
	'no distribution point: checked against its issuer\'s discovered CRL');

# optional: passed with a warning meanwhile, once per connection; olga's
# CRL is not on the server yet, so it stays unloaded for a while

my $unchecked = qr/\[warn\].*no CRL in force for the issuer of the leaf \(serial 1004\).*passed by "mtls_crl_cdp optional"/;

$mark = Mtls::log_mark($t);
is(outcome(https_get(port(8444), '/', "$d/olga")), '200 allow',
	'optional: passed before its CRL is loaded');
ok(Mtls::wait_log($t, $mark, $unchecked), 'optional: warning');
ok(Mtls::wait_log($t, $mark,
	qr/CRL distribution point "\Q$base\E\/crl\/olga\.crl" discovered/),
	'optional: the URL taken on');

# a keep-alive connection while the CRL is still not loaded: every request
# is decided again, and passed, but only the first one writes the warning

$mark = Mtls::log_mark($t);
{
	my $ka = Mtls::KeepAlive->new(port => port(8444), cert => "$d/olga");
	my @passed = map { outcome($ka->get('/')) } 1 .. 20;
	is(join(',', @passed), join(',', ('200 allow') x 20),
		'optional, keep-alive: 20 requests passed before the CRL is loaded');
	$ka->close();
}
my @warned = grep { $_ =~ $unchecked }
	split /\n/, substr(Mtls::slurp("$d/error.log"), $mark);
is(scalar(@warned), 1, 'optional, keep-alive: one warning on the connection');
is($src->("$base/crl/olga.crl")->{generation}, 0,
	'optional, keep-alive: the CRL was still not loaded');

$mark = Mtls::log_mark($t);
$pki->crl('www/crl/olga.crl', ca => 'int2', number => 1);
ok(Mtls::wait_log($t, $mark, qr/fetched "\Q$base\E\/crl\/olga\.crl"/, 15),
	'optional: fetched once served');
is(outcome(https_get(port(8444), '/', "$d/bob")), '403 deny revoked',
	'optional: a loaded CRL is enforced');
is(outcome(https_get(port(8444), '/', "$d/olga")), '200 allow',
	'optional: olga allowed once loaded');
is(outcome(https_get(port(8443), '/', "$d/olga")), '200 allow',
	'olga allowed once loaded, also where discovery is on');

# outside the allowed prefixes, or with a dot segment: never fetched

$mark = Mtls::log_mark($t);
is(outcome(https_get(port(8443), '/', "$d/eve")), '403 deny crl_missing',
	'CDP outside the prefixes: crl_missing');
is(outcome(https_get(port(8443), '/', "$d/eve")), '403 deny crl_missing',
	'CDP outside the prefixes: still crl_missing');
like(Mtls::wait_log($t, $mark, qr/secret\.crl/),
	qr/\[warn\].*CRL distribution point "\Q$base\E\/private\/secret\.crl" is under no "mtls_crl_cdp_allow" prefix, not fetched/,
	'outside the prefixes: warning');
is(outcome(https_get(port(8444), '/', "$d/eve")), '200 allow',
	'optional: passed');
is(outcome(https_get(port(8443), '/', "$d/mallory")), '403 deny crl_missing',
	'CDP with a dot segment: crl_missing');
ok(Mtls::wait_log($t, $mark, qr/"\Q$base\E\/crl\/\.\.\/private\/secret\.crl" has a dot segment/),
	'dot segment: warning');

# the cap: three URLs taken on (int, root, olga), the fourth refused

$mark = Mtls::log_mark($t);
is(outcome(https_get(port(8443), '/', "$d/dave")), '403 deny crl_missing',
	'beyond the cap: crl_missing');
ok(Mtls::wait_log($t, $mark,
	qr/\[error\].*CRL distribution point "\Q$base\E\/crl\/dave\.crl" not fetched: "mtls_crl_cdp_max" 3 reached/),
	'beyond the cap: error');
is(outcome(https_get(port(8443), '/', "$d/dave")), '403 deny crl_missing',
	'beyond the cap: still crl_missing');
sleep(1.5);
is($fetched->('/private/secret.crl'), 0,
	'the URL outside the prefixes was never requested');
is($fetched->('/private/secret.crl') + $fetched->('/crl/../private/secret.crl'),
	0, 'nor the one with a dot segment');
is($fetched->('/crl/dave.crl'), 0, 'the URL beyond the cap was never requested');
ok($fetched->('/crl/int.crl') >= 2, 'the discovered CRL is refreshed');
like($requested->(), qr{^/crl/int\.crl inm="}m, 'refreshed conditionally');

# status

my $s = $src->("$base/crl/int.crl");
ok($s, 'status lists the discovered URL') or diag(explain($status));
is($s->{kind}, 'crl_cdp', 'status: kind');
like($s->{fetch}{http_status} // '', qr/^(200|304)\z/, 'status: HTTP status');
is($s->{fetch}{failures}, 0, 'status: no failures');
is($s->{crls}[0]{issuer}, 'CN=Test Int CA,O=Example', 'status: the CRL in force')
	or diag(explain($s));
ok(-s $s->{path} && $s->{path} =~ m{^\Q$d\E/cache/cdp-}, 'copy kept on disk');
is_deeply([ @{$status->{crl_cdp}}{qw/urls max refused_at_max refused_prefix/} ],
	[ 3, 3, 1, 0 ], 'status: discovery counters');

my $prom = Mtls::mtls_status(port(8080), uri => '/status?format=prometheus',
	raw => 1);
like($prom, qr/^mtls_fetch_failures\{url="\Q$base\E\/crl\/int\.crl",kind="crl_cdp"\} 0$/m,
	'prometheus: the discovered URL');
like($prom, qr/^mtls_crl_cdp_urls 3$/m, 'prometheus: URLs');
like($prom, qr/^mtls_crl_cdp_refused_total\{reason="max"\} 1$/m,
	'prometheus: refused at the cap');

# a reload: the URLs discovered and their CRLs are in force from the first
# request of the new workers

Mtls::reload($t);
is(outcome(https_get(port(8443), '/', "$d/bob")), '403 deny revoked',
	'reload: bob revoked from the first request');
is(outcome(https_get(port(8443), '/', "$d/alice")), '200 allow',
	'reload: alice allowed from the first request');
is($src->("$base/crl/int.crl")->{kind}, 'crl_cdp',
	'reload: the discovered URL still listed');

# the cap holds across a reload, since the URLs taken on are kept: dave's is
# refused again; a reload with a higher mtls_crl_cdp_max takes it on

$mark = Mtls::log_mark($t);
is(outcome(https_get(port(8443), '/', "$d/dave")), '403 deny crl_missing',
	'reload: beyond the cap still');
ok(Mtls::wait_log($t, $mark,
	qr/\[error\].*"\Q$base\E\/crl\/dave\.crl" not fetched: "mtls_crl_cdp_max" 3 reached/),
	'reload: refused again, with its error line');

$t->write_file_expand('nginx.conf',
	$nginx_conf =~ s/mtls_crl_cdp_max 3;/mtls_crl_cdp_max 4;/r);
Mtls::reload($t);
$mark = Mtls::log_mark($t);
is(outcome(https_get(port(8443), '/', "$d/dave")), '403 deny crl_missing',
	'higher cap: the first request, before the CRL is loaded');
ok(Mtls::wait_log($t, $mark, qr/fetched "\Q$base\E\/crl\/dave\.crl"/),
	'higher cap: fetched');
is(outcome(https_get(port(8443), '/', "$d/dave")), '200 allow',
	'higher cap: allowed');

# revoked at the CA while a keep-alive connection is open: denied within
# the refresh interval (1s)

my $ka = Mtls::KeepAlive->new(port => port(8443), cert => "$d/alice");
is($ka->get('/')->{status}, 200, 'keep-alive: allowed before');
$pki->crl('int.crl.next', ca => 'int', revoke => [ 'bob', 'alice' ],
	number => 2);
my $revoked_at = time();
Mtls::write_atomic("$d/www/crl/int.crl", Mtls::slurp("$d/int.crl.next"));
ok(Mtls::wait_for(sub { ($ka->get('/') // {})->{status} == 403 }, 6),
	'keep-alive: denied after the CA revoked alice');
my $took = time() - $revoked_at;
ok($took < 4, "within the refresh interval ($took s)");

# a restart with the server down: the discovered URLs and their kept copies
# are in force from the first request

$t->stop();
MtlsHttp::stop($http);
$t->run();

is(outcome(https_get(port(8443), '/', "$d/alice")), '403 deny revoked',
	'restart: alice revoked from the first request');
is(outcome(https_get(port(8443), '/', "$d/olga")), '200 allow',
	'restart: olga allowed from the first request');
ok(Mtls::wait_for(sub {
	($src->("$base/crl/int.crl")->{fetch}{failures} // 0) > 0 }),
	'restart: the loader keeps trying');

# a discovered CRL past its nextUpdate, with no mtls_crl_grace: crl_stale,
# and a warning that says so

my $stale = qr/\[warn\].*CRL discovered at "\Q$base\E\/crl\/olga\.crl" is past its nextUpdate \S+, (.*)$/;
my $stale_says = sub {
	my ($mark, $timeout) = @_;
	my $line = Mtls::wait_log($t, $mark, $stale, $timeout // 5);
	return $line =~ $stale ? $1 : '';
};

$http = MtlsHttp::start(port(8081), "$d/www");
$mark = Mtls::log_mark($t);
$pki->crl('olga.crl.stale', ca => 'int2', number => 2,
	lastupdate => Mtls::asn1_time(time() - 7200),
	nextupdate => Mtls::asn1_time(time() - 3600));
Mtls::write_atomic("$d/www/crl/olga.crl", Mtls::slurp("$d/olga.crl.stale"));
is($stale_says->($mark, 8), 'certificates of its issuer are denied',
	'stale: warning');
is(outcome(https_get(port(8443), '/', "$d/olga")), '403 deny crl_stale',
	'stale: crl_stale');
MtlsHttp::stop($http);

# the warning goes by mtls_crl_grace as the decision does: an hour past
# nextUpdate is past a grace of 30 minutes, and within one of 2 hours

my $with_grace = sub {
	my ($grace) = @_;
	$t->write_file_expand('nginx.conf', $nginx_conf
		=~ s/(mtls_crl_cdp_max 3;)/$1\n    mtls_crl_grace $grace;/r);
	Mtls::reload($t);
};

$with_grace->('30m');
$mark = Mtls::log_mark($t);
is($stale_says->($mark), 'certificates of its issuer are denied',
	'past the grace: warning');
is(outcome(https_get(port(8443), '/', "$d/olga")), '403 deny crl_stale',
	'past the grace: crl_stale');

$with_grace->('2h');
$mark = Mtls::log_mark($t);
is($stale_says->($mark),
	'within "mtls_crl_grace", certificates of its issuer still pass',
	'within the grace: warning');
is(outcome(https_get(port(8443), '/', "$d/olga")), '200 allow',
	'within the grace: allowed');
my @said;
Mtls::wait_for(sub {
	@said = map { /$stale/ ? $1 : () }
		split /\n/, substr(Mtls::slurp("$d/error.log"), $mark);
	@said >= 2;
});
is_deeply([ sort { $a cmp $b } keys %{{ map { $_ => 1 } @said }} ],
	[ 'within "mtls_crl_grace", certificates of its issuer still pass' ],
	'within the grace: no warning says denied (' . scalar(@said) . ' rounds)');

# configuration errors

my $conf = <<'EOF';
%%TEST_GLOBALS%%
events {
}
http {
    %%TEST_GLOBALS_HTTP%%
    mtls_cache_dir %%TESTDIR%%/check;
    AT_HTTP
    server {
        listen       127.0.0.1:%%PORT_8446%% ssl;
        ssl_certificate localhost.crt;
        ssl_certificate_key localhost.key;
        ssl_client_certificate cas.crt;
        ssl_verify_client on;
        AT_SERVER
    }
}
EOF

my $check = sub {
	my ($http, $server) = @_;
	(my $c = $conf) =~ s/AT_HTTP/$http/;
	my $in_server = $server // '';
	$c =~ s/AT_SERVER/$in_server/;
	return nginx_t($t, $c);
};

like($check->('', 'mtls_crl_cdp on;'),
	qr/\[emerg\].*"mtls_crl_cdp" is on in .*check\.conf:\d+, but no "mtls_crl_cdp_allow" prefix is set/,
	'on without a prefix: emerg');
like($check->('', 'mtls_crl_cdp optional;'),
	qr/\[emerg\].*no "mtls_crl_cdp_allow" prefix is set/,
	'optional without a prefix: emerg');
like($check->('', 'mtls_crl_cdp off;'), qr/test is successful/,
	'off without a prefix: fine');
like($check->('mtls_crl_cdp_allow http://pki.example.com/crl/;',
	'mtls_crl_cdp on;'), qr/test is successful/, 'on with a prefix: fine');
like($check->('', 'mtls_crl_cdp maybe;'),
	qr/\[emerg\] invalid value "maybe" in .*check.conf/, 'bad mode');
like($check->('mtls_crl_cdp_allow ldap://ldap.example.com/;'),
	qr/\[emerg\].*"mtls_crl_cdp_allow" directive has invalid value "ldap:\/\/ldap.example.com\/": not an http:\/\/ or https:\/\/ URL/,
	'prefix: not http');
like($check->('mtls_crl_cdp_allow http://user@pki.example.com/;'),
	qr/\[emerg\].*has invalid value "http:\/\/user\@pki.example.com\/": has user information/,
	'prefix: user information');
like($check->('mtls_crl_cdp_allow http://pki.example.com/crl/../;'),
	qr/\[emerg\].*has a dot segment/, 'prefix: dot segment');
like($check->('mtls_crl_cdp_allow http://pki.example.com/ optional;'),
	qr/\[emerg\].*invalid value "optional": unknown parameter/,
	'prefix: optional refused');
like($check->('mtls_crl_cdp_allow http://pki.example.com/ interval=soon;'),
	qr/\[emerg\].*"interval=soon": invalid time/, 'prefix: bad interval');
like($check->('mtls_crl_cdp_allow http://pki.example.com/;'
	. ' mtls_crl_cdp_allow HTTP://PKI.example.com:80/;'),
	qr/\[emerg\].*the prefix is allowed twice/, 'prefix: twice');
like($check->('mtls_crl_cdp_max 0;'),
	qr/\[emerg\].*"mtls_crl_cdp_max" directive has invalid value "0": must be between 1 and 4096/,
	'max: 0');
like($check->('mtls_crl_cdp_max 3; mtls_crl_cdp_max 4;'),
	qr/\[emerg\].*"mtls_crl_cdp_max" directive is duplicate/, 'max: duplicate');

like($check->('', 'location / { mtls_crl_cdp on; }'),
	qr/\[emerg\].*"mtls_crl_cdp" directive is not allowed here/,
	'not in a location');

# the example configuration

{
	my $ex = Mtls::slurp('../nginx-conf/crl-cdp.conf');
	mkdir("$d/ex");
	mkdir("$d/ex/certs");
	Mtls::spew("$d/ex/ca-chain.crt", Mtls::slurp("$d/cas.crt"));
	Mtls::spew("$d/ex/certs/api.example.com.chain.crt",
		Mtls::slurp("$d/localhost.crt"));
	Mtls::spew("$d/ex/certs/api.example.com.key",
		Mtls::slurp("$d/localhost.key"));
	$ex =~ s/%%PKI%%/$d\/ex/g;
	$ex =~ s/%%PORT%%/'127.0.0.1:' . port(8446)/ge;
	$ex =~ s/%%PREFIX%%/$base\/crl\//g;
	$ex =~ s{/var/cache/nginx/mtls}{$d/ex/cache};
	$t->write_file('crl-cdp.conf', $ex);
	like(nginx_t($t, <<'EOF', 'example.conf'), qr/test is successful/,
%%TEST_GLOBALS%%
events {
}
http {
    %%TEST_GLOBALS_HTTP%%
    include crl-cdp.conf;
}
EOF
		'nginx-conf/crl-cdp.conf');
}

unlike(Mtls::slurp("$d/error.log"), qr/\[(alert|crit|emerg)\]/, 'no alerts');

###############################################################################
