#!/usr/bin/perl

# Tests for the mtls module: configuration at the edges.  Rule lists of
# tens of thousands of entries work; odd values either work, shown by a
# request, or "nginx -t" refuses them naming the directive and the value.
# (The invalid values of t/mtls_config.t are not repeated here.)

###############################################################################

use warnings;
use strict;

use Test::More;

use Encode ();

BEGIN { use FindBin; chdir($FindBin::Bin); }

use Test::Nginx;
use Mtls;

###############################################################################

select STDERR; $| = 1;
select STDOUT; $| = 1;

my $t = Test::Nginx->new()->has(qw/http http_ssl/)->has_daemon('openssl')
	->plan(69);

my $d = $t->testdir();
my $pki = Mtls::PKI->new($d);

$pki->ca('ca', subj => '/O=Example/CN=Test CA');
$pki->leaf('localhost', ca => 'ca', subj => '/CN=localhost',
	san => 'DNS:localhost', eku => 'serverAuth');

$pki->leaf($_, ca => 'ca', subj => "/O=Example/CN=$_")
	for qw/alice bob n00001 n20000 n20001/;
$pki->leaf('cn64', ca => 'ca', subj => '/O=Example/CN=' . 'x' x 64);
$pki->leaf('web', ca => 'ca', subj => '/O=Example/CN=web',
	san => 'URI:spiffe://example.org/ns/n05000/sa/web');
$pki->leaf('web_out', ca => 'ca', subj => '/O=Example/CN=web',
	san => 'URI:spiffe://example.org/ns/n05001/sa/web');

# a CRL an hour past its nextUpdate

$pki->crl('stale.crl', ca => 'ca', number => 1,
	lastupdate => asn1_time(time() - 7200),
	nextupdate => asn1_time(time() - 3600));

$t->write_file('deny.txt', "# nothing yet\n");

# 20,000 names in 20 directives of an included file, and in one directive

my @names = map { sprintf('n%05d', $_) } 1 .. 20000;

$t->write_file('cns.conf', join '', map {
	'mtls_allow_cn ' . join(' ', @names[$_ * 1000 .. $_ * 1000 + 999]) . ";\n"
} 0 .. 19);
$t->write_file('cns_one.conf', "mtls_allow_cn @names;\n");

# 5,000 SPIFFE patterns and 5,000 DNs

$t->write_file('spiffe.conf', join '', map {
	sprintf("mtls_allow_spiffe spiffe://example.org/ns/n%05d/*;\n", $_)
} 1 .. 5000);
$t->write_file('dns.conf', join '', map {
	sprintf("mtls_allow_dn \"CN=n%05d,O=Example\";\n", $_)
} 15001 .. 20000);

# 20,000 serials, alice's among them

my @serials = map { sprintf('%X', 0x100000 + $_) } 1 .. 19999;
push @serials, serial_hex("$d/alice.crt");
$t->write_file('serials.conf', "mtls_deny_serial @serials;\n");

$t->write_file_expand('nginx.conf', <<'EOF');

%%TEST_GLOBALS%%

daemon off;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    add_header X-Decision $mtls_decision always;
    add_header X-Reason $mtls_reason always;

    # the smallest interval: files are checked every millisecond, and
    # nothing else suffers

    mtls_reload_interval 1ms;

    server {
        listen       127.0.0.1:%%PORT_8443%% ssl;
        server_name  localhost;

        ssl_certificate localhost.crt;
        ssl_certificate_key localhost.key;
        ssl_client_certificate ca.crt;
        ssl_verify_client optional_no_ca;

        location /cn {
            include cns.conf;
            try_files /ok =404;
        }

        location /cn_one {
            include cns_one.conf;
            try_files /ok =404;
        }

        location /spiffe {
            include spiffe.conf;
            try_files /ok =404;
        }

        location /dn {
            include dns.conf;
            try_files /ok =404;
        }

        location /serials {
            include serials.conf;
            mtls on;
            try_files /ok =404;
        }

        location /dup {
            mtls_allow_cn alice alice;
            mtls_allow_cn alice;
            mtls_allow_san dns:a.example.com DNS:A.EXAMPLE.COM;
            try_files /ok =404;
        }

        location /cn64 {
            mtls_allow_cn xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx;
            try_files /ok =404;
        }

        location /long {
            mtls_allow_cn __LONG__;
            try_files /ok =404;
        }

        location /deny_list {
            mtls_deny_list deny.txt;
            try_files /ok =404;
        }

        # 100 deny lists, one source each (checked every 1ms, 1,000 files
        # keep the loader process a quarter of a core busy)
        __DENY_LISTS__

        location /status444 {
            mtls_allow_cn nobody;
            mtls_deny_status 444;
            try_files /ok =404;
        }

        location /status496 {
            mtls_allow_cn nobody;
            mtls_deny_status 496;
            try_files /ok =404;
        }

        # an odd file name: quotes, a backslash, a newline, UTF-8
        location /odd {
            mtls_deny_list "odd \"q\" \\ \n é.txt";
        }

        location /status0599 {
            mtls_allow_cn nobody;
            mtls_deny_status 0599;
            try_files /ok =404;
        }
    }

    server {
        listen       127.0.0.1:%%PORT_8080%%;
        server_name  localhost;

        location /status {
            mtls_status;
        }
    }

    # a stale CRL, without grace and with the largest grace there is

    server {
        listen       127.0.0.1:%%PORT_8444%% ssl;
        server_name  localhost;

        ssl_certificate localhost.crt;
        ssl_certificate_key localhost.key;
        ssl_client_certificate ca.crt;
        ssl_verify_client on;

        mtls_crl stale.crl;

        location / {
            try_files /ok =404;
        }

        location /max {
            mtls_crl_grace 9223372036854775807s;
            try_files /ok =404;
        }

        location /years {
            mtls_crl_grace 10000y;
            try_files /ok =404;
        }
    }
}

EOF

my $long = 'l' x 4000;
my $lists = join "\n        ", map {
	"location /dl$_ { mtls_deny_list dl$_.txt; try_files /ok =404; }"
} 1 .. 100;

my $conf = $t->read_file('nginx.conf');
$conf =~ s/__LONG__/$long/;
$conf =~ s/__DENY_LISTS__/$lists/;

$t->write_file("dl$_.txt", "# nothing\n") for 1 .. 99;
$t->write_file("odd \"q\" \\ \n \xc3\xa9.txt", "# nothing\n");
$t->write_file('dl100.txt', serial_hex("$d/alice.crt") . "\n");
$t->write_file('nginx.conf', $conf);

$t->write_file('ok', "ok\n");

###############################################################################

# invalid values: [ level, directive line, directive name, the bad value ]

my @invalid = (
	[ 'location', 'mtls_allow_cn "";', 'mtls_allow_cn', '' ],
	[ 'location', "mtls_allow_cn \"a\x7fb\";", 'mtls_allow_cn', "a\x7fb" ],
	[ 'location', "mtls_allow_cn \"a\xc2\x85b\";", 'mtls_allow_cn',
		"a\xc2\x85b" ],
	[ 'location', "mtls_allow_cn alice \"a\nb\";", 'mtls_allow_cn', "a\nb" ],
	# not UTF-8: the byte is shown escaped
	[ 'location', "mtls_allow_cn \"Zo\xeb\";", 'mtls_allow_cn', 'Zo\xeb' ],
	[ 'location', 'mtls_allow_dn "";', 'mtls_allow_dn', '' ],
	[ 'location', 'mtls_allow_san "";', 'mtls_allow_san', '' ],
	[ 'location', 'mtls_allow_san dns:*;', 'mtls_allow_san', 'dns:*' ],
	[ 'location', 'mtls_allow_san dns:*.*.example.com;', 'mtls_allow_san',
		'dns:*.*.example.com' ],
	[ 'location', 'mtls_allow_san dns:a*.example.com;', 'mtls_allow_san',
		'dns:a*.example.com' ],
	[ 'location', 'mtls_allow_san dns:example.com.;', 'mtls_allow_san',
		'dns:example.com.' ],
	[ 'location', 'mtls_allow_san email:@example.com;', 'mtls_allow_san',
		'email:@example.com' ],
	[ 'location', 'mtls_allow_spiffe *;', 'mtls_allow_spiffe', '*' ],
	[ 'location', 'mtls_allow_spiffe spiffe://example.org/*/x;',
		'mtls_allow_spiffe', 'spiffe://example.org/*/x' ],
	[ 'location', 'mtls_allow_spiffe spiffe://example.org/a*;',
		'mtls_allow_spiffe', 'spiffe://example.org/a*' ],
	[ 'location', 'mtls_allow_spiffe spiffe://example.org/**;',
		'mtls_allow_spiffe', 'spiffe://example.org/**' ],
	[ 'location', 'mtls_allow_spiffe spiffe://example.org/;',
		'mtls_allow_spiffe', 'spiffe://example.org/' ],
	[ 'location', 'mtls_allow_spiffe spiffe://*/a;',
		'mtls_allow_spiffe', 'spiffe://*/a' ],
	[ 'location', 'mtls_deny_serial ":";', 'mtls_deny_serial', ':' ],
	[ 'location', 'mtls_allow_fingerprint sha256:;',
		'mtls_allow_fingerprint', 'sha256:' ],
	[ 'location', 'mtls_deny_status "";', 'mtls_deny_status', '' ],
	[ 'location', 'mtls_deny_status 999;', 'mtls_deny_status', '999' ],
	[ 'location', 'mtls_deny_status +403;', 'mtls_deny_status', '+403' ],
	[ 'server', 'mtls_crl stale.crl Optional;', 'mtls_crl', 'Optional' ],
	[ 'server', 'mtls_crl "";', 'mtls_crl', '' ],

	# with 0, worker 0 spun in its timer and never served a request
	[ 'http', 'mtls_reload_interval 0;', 'mtls_reload_interval', '0' ],
	[ 'http', 'mtls_reload_interval 0s;', 'mtls_reload_interval', '0s' ],
);

my $n = 0;

for my $case (@invalid) {
	my ($level, $line, $name, $value) = @$case;

	my $file = 'invalid' . ++$n . '.conf';
	my $out = nginx_t($t, conf($level => $line), $file);
	my $at = "$d/$file:" . conf_line($t, $file, (split /\n/, $line)[-1]);

	(my $shown = $value) =~ s/[^\x20-\x7e]/sprintf('\\x%02X', ord $&)/ge;

	like($out, qr/\[emerg\] "\Q$name\E" directive has invalid value "\Q$value\E"(?:: [^\n]+)? in \Q$at\E$/m,
		"$name \"$shown\"");
}

# values that nginx's own parsers refuse, in nginx's words

my @nginx = (
	[ 'http', 'mtls_reload_interval -1;',
		qr/"mtls_reload_interval" directive invalid value/ ],
	[ 'location', 'mtls_crl_grace -1s;',
		qr/"mtls_crl_grace" directive invalid value/ ],
	[ 'location', 'mtls_crl_grace 9223372036854775808s;',
		qr/"mtls_crl_grace" directive invalid value/ ],
	[ 'location', 'mtls_crl_check both;', qr/invalid value "both"/ ],
	[ 'location', 'mtls_status x;',
		qr/invalid number of arguments in "mtls_status" directive/ ],
	[ 'location', 'mtls_allow_cn ' . 'a' x 5000 . ';',
		qr/too long parameter/ ],
);

for my $case (@nginx) {
	my ($level, $line, $re) = @$case;

	my $file = 'invalid' . ++$n . '.conf';
	my $out = nginx_t($t, conf($level => $line), $file);
	my $at = "$d/$file:" . conf_line($t, $file, substr($line, 0, 30));

	like($out, qr/\[emerg\] [^\n]*$re[^\n]* in \Q$at\E$/m,
		'nginx: ' . substr($line, 0, 40));
}

###############################################################################

$t->run();

# 20,000 names

is(get('/cn', 'n00001'), '200 allow', '20,000 names: first');
is(get('/cn', 'n20000'), '200 allow', '20,000 names: last');
is(get('/cn', 'n20001'), '403 deny not_allowed', '20,000 names: other');
is(get('/cn_one', 'n20000'), '200 allow', '20,000 names in one directive');
is(get('/cn_one', 'alice'), '403 deny not_allowed',
	'20,000 names in one directive: other');

# 5,000 SPIFFE patterns, 5,000 DNs, 20,000 serials

is(get('/spiffe', 'web'), '200 allow', '5,000 spiffe patterns: last');
is(get('/spiffe', 'web_out'), '403 deny not_allowed',
	'5,000 spiffe patterns: other');
is(get('/dn', 'n20000'), '200 allow', '5,000 DNs: last');
is(get('/dn', 'n00001'), '403 deny not_allowed', '5,000 DNs: other');
is(get('/serials', 'alice'), '403 deny serial_denied', '20,000 serials: last');
is(get('/serials', 'bob'), '200 allow', '20,000 serials: other');

# duplicates are harmless

is(get('/dup', 'alice'), '200 allow', 'duplicate rules');
is(get('/dup', 'bob'), '403 deny not_allowed', 'duplicate rules: other');

# the longest CN "openssl req" makes; a rule longer than any CN

is(get('/cn64', 'cn64'), '200 allow', '64-character CN');
is(get('/long', 'cn64'), '403 deny not_allowed', '4,000-character rule');

# a leading zero in the deny status

is(get('/status0599', 'alice'), '599 deny not_allowed', 'deny status 0599');

# nginx's own codes: 444 closes the connection, 496 is nginx's 400 page for
# a missing certificate

my $mark = Mtls::log_mark($t);
is(get('/status444', 'alice'), 'no response', 'deny status 444');
ok(Mtls::wait_log($t, $mark, qr/access forbidden by mtls: not_allowed/),
	'deny status 444: logged');

my $r = https_get(port(8443), '/status496', "$d/alice");
is(outcome($r), '400 deny not_allowed', 'deny status 496');
like($r // '', qr/No required SSL certificate was sent/,
	'deny status 496: nginx\'s page');

# the deny list is picked up with a 1ms interval, and requests go on

is(get('/deny_list', 'bob'), '200 allow', 'deny list: before');

Mtls::write_atomic("$d/deny.txt", serial_hex("$d/bob.crt") . "\n");

ok(Mtls::wait_for(sub { get('/deny_list', 'bob') eq '403 deny revoked' }),
	'deny list: reloaded');
is(get('/deny_list', 'alice'), '200 allow', 'deny list: other');

# 100 sources: each its own

is(get('/dl1', 'alice'), '200 allow', '100 deny lists: first');
is(get('/dl100', 'alice'), '403 deny revoked', '100 deny lists: last');

Mtls::write_atomic("$d/dl50.txt", serial_hex("$d/alice.crt") . "\n");

ok(Mtls::wait_for(sub { get('/dl50', 'alice') eq '403 deny revoked' }),
	'100 deny lists: one reloaded');
is(get('/dl51', 'alice'), '200 allow', '100 deny lists: its neighbour');

# the odd file name in the status page, JSON and Prometheus

{
	my $odd = "$d/odd \"q\" \\ \n \xc3\xa9.txt";
	my $status = Mtls::mtls_status(port(8080));
	my $source = Mtls::status_source($status, Encode::decode('UTF-8', $odd));

	is($source && $source->{entries}, 0, 'odd file name: in JSON');

	my $prom = Mtls::mtls_status(port(8080), raw => 1,
		uri => '/status?format=prometheus') // '';
	(my $label = $odd) =~ s/([\\"])/\\$1/g;
	$label =~ s/\n/\\n/g;
	ok(index($prom, "path=\"$label\"") >= 0, 'odd file name: Prometheus label');
}

# a stale CRL: denied without grace, passes with the largest grace (no
# overflow when it is added to nextUpdate)

is(get('/', 'alice', 8444), '403 deny crl_stale', 'stale CRL: no grace');
is(get('/max', 'alice', 8444), '200 allow', 'stale CRL: maximum grace');
is(get('/years', 'alice', 8444), '200 allow', 'stale CRL: 10000y grace');

# the warning about the stale CRL: with a 1ms interval, at most once a
# second (it was logged some 600 times a second)

my @stale = Mtls::wait_for(sub {
	my @w = $t->read_file('error.log')
		=~ /^(\S+ \S+) \[warn\] .*stale\.crl" is past its nextUpdate/mg;
	return @w >= 2 ? [ @w ] : undef;
});
my %second;
$second{$_}++ for @{$stale[0] // []};

ok(@{$stale[0] // []} >= 2, 'stale CRL: warnings logged');
is(join(' ', grep { $second{$_} > 1 } sort keys %second), '',
	'stale CRL: at most one warning a second');

# nginx with a 1ms interval stops when asked

my $master = Mtls::master_pid($t);
$t->stop();

# "pid#tid": the tid is the pid where nginx has thread support
# (--with-threads, as in Debian's builds), 0 where it has none.
like($t->read_file('error.log'), qr/\[notice\] $master#($master|0): exit$/m,
	'1ms interval: nginx exited');
unlike($t->read_file('error.log'), qr/exited on signal/, 'no worker crashed');

###############################################################################

# a configuration with a place for a directive at each level

sub conf {
	my (%at) = @_;

	my $conf = <<'EOF';

%%TEST_GLOBALS%%

daemon off;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    __HTTP__

    server {
        listen       127.0.0.1:%%PORT_8443%% ssl;
        server_name  localhost;

        ssl_certificate localhost.crt;
        ssl_certificate_key localhost.key;
        ssl_client_certificate ca.crt;
        ssl_verify_client optional_no_ca;

        __SERVER__

        location / {
            __LOCATION__
        }
    }
}

EOF

	$conf =~ s/__HTTP__/$at{http} \/\/ ''/e;
	$conf =~ s/__SERVER__/$at{server} \/\/ ''/e;
	$conf =~ s/__LOCATION__/$at{location} \/\/ ''/e;

	return $conf;
}

sub get {
	my ($uri, $cert, $port) = @_;

	return outcome(https_get(port($port // 8443), $uri, "$d/$cert"));
}

###############################################################################
