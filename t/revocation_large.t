#!/usr/bin/perl

# Tests for the mtls module: a 1,000,000-entry CRL replaces a small one while
# requests go on.  With one worker process, the loader process is forked from
# the very worker that serves: requests answered while the status says
# "loading" show that the event loop is not blocked by the load, and a
# revoked client that still passes then shows that the previous data stays
# in force until the new set is complete.  Under scripts/sanitize (AddressSanitizer, which
# sets TEST_MTLS_SANITIZER), the CRL has 100,000 entries, and the memory
# check is skipped: ASan keeps freed memory in quarantine on purpose.

###############################################################################

use warnings;
use strict;

use Test::More;

BEGIN { use FindBin; chdir($FindBin::Bin); }

use Test::Nginx;
use Mtls;

use Time::HiRes qw/time/;

###############################################################################

select STDERR; $| = 1;
select STDOUT; $| = 1;

my $t = Test::Nginx->new()->has(qw/http http_ssl/)->has_daemon('openssl')
	->plan(20);

$t->write_file_expand('nginx.conf', <<'EOF');

%%TEST_GLOBALS%%

daemon off;
worker_processes 1;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    mtls_reload_interval 100ms;
    keepalive_requests 100000;

    server {
        listen       127.0.0.1:%%PORT_8443%% ssl;
        server_name  localhost;

        ssl_certificate localhost.crt;
        ssl_certificate_key localhost.key;
        ssl_client_certificate ca.crt;
        ssl_verify_client on;

        add_header X-Decision $mtls_decision always;
        add_header X-Reason $mtls_reason always;

        mtls_crl big.crl;

        location / {
            try_files /ok =404;
        }

        location = /status {
            mtls off;
            mtls_status;
        }
    }
}

EOF

my $d = $t->testdir();
my $pki = Mtls::PKI->new($d);

$pki->ca('ca', subj => '/O=Example/CN=Test CA', serial => '0x10');
$pki->leaf('localhost', ca => 'ca', subj => '/CN=localhost',
	san => 'DNS:localhost', eku => 'serverAuth', serial => '0x2001');
$pki->leaf('alice', ca => 'ca', subj => '/O=Example/CN=alice',
	serial => '0x1002');
$pki->leaf('bob', ca => 'ca', subj => '/O=Example/CN=bob',
	serial => '0x1003');

$t->write_file('ok', "ok\n");

my %ca = (ca_cert => "$d/ca.crt", ca_key => "$d/ca.key");

Mtls::PKI->big_crl("$d/big.crl", %ca, count => 10, number => 1, der => 1);

$t->run();

###############################################################################

my $port = port(8443);
my $path = "$d/big.crl";

my $alice = Mtls::KeepAlive->new(port => $port, cert => "$d/alice");
my $bob = Mtls::KeepAlive->new(port => $port, cert => "$d/bob");

is(outcome($alice && $alice->get('/')), '200 allow', 'alice before');
is(outcome($bob && $bob->get('/')), '200 allow', 'bob before');
is(source($alice)->{entries}, 10, 'small CRL in force');

# 1,000,000 entries and bob

my $asan = ($ENV{TEST_MTLS_SANITIZER} // '') eq 'address';
my $count = $asan ? 100_000 : 1_000_000;

Mtls::PKI->big_crl($path, %ca, count => $count, number => 2, der => 1,
	revoke_serials => [ '1003' ]);

# Each round: status, alice, bob, status.  Bob's answer counts for the old
# data only if the status says "loading" both before and after it.

my ($polls, $during, $bob_old, $bad, $s) = (0, 0, 0, 0);
my $deadline = time() + 120;

while (time() < $deadline) {
	$s = source($alice) or last;
	last if $s->{generation} >= 2;
	$polls++;
	Time::HiRes::sleep(0.01), next unless $s->{loading};

	my $a = outcome($alice->get('/'));
	my $b = outcome($bob->get('/'));
	my $after = source($alice) or last;

	next unless $after->{loading};

	$during++;
	$bad++ if $a ne '200 allow';
	$bob_old++ if $b eq '200 allow';
	$bad++ if $b ne '200 allow';
}

ok($polls, 'status polled while the file was replaced');
cmp_ok($during, '>', 0, 'requests answered while the CRL loads');
is($bad, 0, 'previous data in force while loading');
cmp_ok($bob_old, '>', 0, 'revoked client passes until the new set is in');

$s = source($alice);
note("$during rounds answered during a load of $s->{load_ms} ms");
is($s->{generation}, 2, 'large CRL published');
is($s->{entries}, $count + 1, 'entries');
ok(!$s->{loading}, 'not loading after');
like($s->{load_ms}, qr/^\d+$/, 'load duration in status');

is(outcome($bob->get('/')), '403 deny revoked',
	'bob denied on his open connection');
is(outcome($alice->get('/')), '200 allow', 'alice still allowed');

# parsing takes a few hundred megabytes for a moment; the loader gives them
# back, and the table itself is in shared memory.  The status says "not
# loading" once the table is published, while the loader may still be giving
# memory back; it logs "reloaded" only after that.

my $entries = $count + 1;
like(Mtls::wait_log($t, 0, qr/reloaded .*big\.crl", $entries /),
	qr/reloaded "\Q$path\E", $entries entries in \d+ ms/,
	'reload logged with its duration');

is(scalar(Mtls::loaders(Mtls::master_pid($t) // 0)), 1,
	'the loader process is measured too');

my %rss = map { $_ => rss_mb($_) } processes($t);
note(join ', ', map { "pid $_: $rss{$_} MB" } sort keys %rss);
SKIP: {
	skip 'AddressSanitizer quarantines freed memory', 1 if $asan;

	is(scalar(grep { $_ > 100 } values %rss), 0,
		'memory given back after loading');
}

# nginx quits while the loader reads the next CRL: worker 0 waits for the
# load to end, nothing is published, nothing is left

Mtls::PKI->big_crl($path, %ca, count => $count, number => 3, der => 1);

ok(Mtls::wait_for(sub { (source($alice) // {})->{loading} }, 10),
	'quit: while loading');

my $master = Mtls::master_pid($t);
my $mark = Mtls::log_mark($t);
$alice->close();
$bob->close();
$t->stop();

unlike(substr($t->read_file('error.log'), $mark), qr/mtls: reloaded/,
	'quit: the load in progress is not published');
ok(Mtls::wait_for(sub { !Mtls::loaders($master) }), 'quit: no loader left');
is(join(' ', Mtls::shm_tables($master)), '', 'quit: no tables left');

###############################################################################

# the master, its workers and the loader

sub processes {
	my ($t) = @_;
	my $master = Mtls::master_pid($t) // return ();
	my @children;

	for my $stat (glob '/proc/[0-9]*/stat') {
		open my $fh, '<', $stat or next;
		my ($pid, $ppid) = (<$fh> // '') =~ /^(\d+) \(.*\) \S+ (\d+)/ or next;
		push @children, $pid if $ppid == $master;
	}

	return ($master, @children, map { $_->[0] } Mtls::loaders($master));
}

sub rss_mb {
	my ($pid) = @_;
	open my $fh, '<', "/proc/$pid/status" or return 0;
	my ($kb) = join('', <$fh>) =~ /^VmRSS:\s+(\d+)/m;
	return int(($kb // 0) / 1024);
}

###############################################################################

# the status of big.crl, asked on a keep-alive connection

sub source {
	my ($ka) = @_;

	my $r = $ka->get('/status') or return undef;
	require JSON::PP;
	my $json = eval { JSON::PP::decode_json($r->{body}) };

	return Mtls::status_source($json, $path);
}

###############################################################################
