#!/usr/bin/perl

# Soak of ngx_http_mtls_module, run by scripts/soak (see there for the
# options): load on loopback from several client processes while the deny
# list and the CRL are rewritten, corrupted and restored and nginx is
# reloaded; every response is checked against the decision its certificate
# deserved when it was made.
#
# Certificates: alice is always allowed; bob is in the deny list at times;
# carol is revoked by the CRL at times; dave is never allowed (CN).
#
# A change takes effect within mtls_reload_interval plus the loader's time:
# a request that overlaps [change, change + interval + margin] may get the
# decision of either side; every other request must get exactly the one in
# force.  A corrupt, truncated or older file changes nothing: the decision
# stays the previous one.

use warnings;
use strict;

use File::Temp qw/tempdir/;
use Getopt::Long qw/GetOptions/;
use POSIX ();
use Time::HiRes qw/time sleep/;

use Test::Nginx ();
use Mtls;

my %o = (
	duration => 180,
	interval => 0.1,
	margin => 0.5,
	clients => 2,
	workers => 2,
	'reload-every' => 6,
	'memory-tolerance' => 5,
	keep => 0,
	module => undef,
	nginx => '/usr/sbin/nginx',
);

GetOptions(\%o, 'duration=i', 'interval=f', 'margin=f', 'clients=i',
	'workers=i', 'reload-every=f', 'memory-tolerance=f', 'keep!',
	'module=s', 'nginx=s') or die "soak: bad options\n";

die "soak: --module is required\n" unless defined $o{module};

$| = 1;

my $parent = $$;
my ($master, @kids);

my $d = tempdir('mtls-soak-XXXXXXXX', TMPDIR => 1, CLEANUP => !$o{keep});
my $port = Test::Nginx::port(8443);
my $grace = $o{interval} + $o{margin};

###############################################################################

# PKI

my $pki = Mtls::PKI->new($d);

$pki->ca('ca', subj => '/O=Example/CN=Soak CA');
$pki->leaf('localhost', ca => 'ca', subj => '/CN=localhost',
	san => 'DNS:localhost', eku => 'serverAuth');

my @certs = qw/alice bob carol dave/;
$pki->leaf($_, ca => 'ca', subj => "/O=Example/CN=$_") for @certs;

my $bob_serial = Mtls::serial_hex("$d/bob.crt");
my $bob_fp = Mtls::der_fingerprint_sha256("$d/bob.crt");

Mtls::spew("$d/ok", "ok\n");

# the state: is bob in the deny list, is carol in the CRL

my %state = (bob => 0, carol => 0);
my $crl_number = 1;

Mtls::spew("$d/deny.txt", deny_list(0));
make_crl(0, $crl_number, "$d/ca.crl");

my $globals = "load_module $o{module};\n";
$globals .= "user root;\n" if $> == 0;

Mtls::spew("$d/nginx.conf", <<"EOF");
$globals
pid $d/nginx.pid;
error_log $d/error.log notice;
worker_processes $o{workers};

events {
    worker_connections 1024;
}

http {
    access_log off;
    client_body_temp_path $d/client_body_temp;
    proxy_temp_path $d/proxy_temp;
    fastcgi_temp_path $d/fastcgi_temp;
    uwsgi_temp_path $d/uwsgi_temp;
    scgi_temp_path $d/scgi_temp;

    root $d;

    mtls_reload_interval ${\ int($o{interval} * 1000)}ms;

    server {
        listen 127.0.0.1:$port ssl http2;
        server_name localhost;

        ssl_certificate localhost.crt;
        ssl_certificate_key localhost.key;
        ssl_client_certificate ca.crt;
        ssl_verify_client on;
        ssl_session_cache shared:SSL:1m;

        keepalive_requests 200;

        mtls_allow_cn alice bob carol;
        mtls_deny_list deny.txt;
        mtls_crl ca.crl;

        add_header X-Decision \$mtls_decision always;
        add_header X-Reason \$mtls_reason always;

        location / {
            try_files /ok =404;
        }
    }
}
EOF

###############################################################################

# nginx

system($o{nginx}, '-p', "$d/", '-c', "$d/nginx.conf", '-e', "$d/error.log") == 0
	or die "soak: nginx did not start:\n" . Mtls::slurp("$d/error.log");

$master = Mtls::wait_for(sub { -s "$d/nginx.pid"
	&& Mtls::slurp("$d/nginx.pid") =~ /^(\d+)/ && $1 }, 10)
	or die "soak: no pid file\n";

END {
	return unless $master && $$ == $parent;
	kill TERM => @kids;
	waitpid($_, 0) for @kids;
	kill QUIT => $master;
	Mtls::wait_for(sub { !kill 0, $master }, 30) or kill KILL => $master;
}

Mtls::wait_for(sub { Mtls::https_get($port, '/', "$d/alice") }, 10)
	or die "soak: nginx does not answer\n";

###############################################################################

# load: each client process writes one line per request to its file,
# "start end kind cert status decision reason" (times as epoch seconds)

my $start = time();
my $end = $start + $o{duration};

my @kinds = (('new') x $o{clients}, ('keepalive') x $o{clients},
	('h2') x $o{clients});

for my $i (0 .. $#kinds) {
	my $pid = fork() // die "fork: $!\n";
	if ($pid == 0) {
		@kids = ();
		client($kinds[$i], "$d/client.$i", $end, $i);
		POSIX::_exit(0);
	}
	push @kids, $pid;
}

# the driver: file changes, reloads and memory samples until the end

my @timeline = ([ $start - 1, { %state }, 'start' ]);
my @memory;
my (%actions, %reloads);

my $next_change = $start + 1 + rand(2);
my $next_reload = $start + $o{'reload-every'};
my $next_sample = $start;

while (time() < $end) {
	my $now = time();

	if ($now >= $next_sample) {
		my $m = memory($master);
		push @memory, [ $now - $start, @$m ] if $m;
		$next_sample += 1;
	}

	if ($now >= $next_reload) {
		# "nginx -s reload" reads the configuration, files included, and
		# sends nothing if one is bad; SIGHUP takes the master's own path,
		# which refuses the new configuration
		if ($reloads{total}++ % 2) {
			kill HUP => $master;
			$reloads{SIGHUP}++;
		} elsif (quiet_system($o{nginx}, '-q', '-p', "$d/",
			'-c', "$d/nginx.conf", '-e', "$d/error.log", '-s', 'reload') == 0)
		{
			$reloads{'nginx -s reload'}++;
		} else {
			$reloads{'nginx -s reload refused'}++;
		}
		$next_reload += $o{'reload-every'};
	}

	if ($now >= $next_change) {
		my $what = change();
		$actions{$what}++;
		$next_change = time() + 1.5 + rand(2);
	}

	sleep(0.05);
}

my $dead_clients = 0;

for my $pid (@kids) {
	waitpid($pid, 0);
	$dead_clients++ if $?;
}
@kids = ();

my $master_alive = kill 0, $master;
my @tables = Mtls::shm_tables($master);

###############################################################################

# checks

my (%count, @mismatch, @server_errors);
my $failures = 0;

for my $i (0 .. $#kinds) {
	open my $fh, '<', "$d/client.$i" or die "can't open $d/client.$i: $!\n";
	while (my $line = <$fh>) {
		chomp $line;
		my ($t0, $t1, $kind, $cert, $status, $decision, $reason)
			= split / /, $line;
		$reason //= '';

		$count{total}++;
		$count{$kind}++;

		if ($status eq 'dropped') {
			$count{dropped}++;
			next;
		}

		if ($status eq 'failed') {
			$count{failed}++;
			push @mismatch, "$line: no response on a new connection";
			next;
		}

		push @server_errors, $line if $status =~ /^5/;

		my $got = "$status $decision" . ($reason ne '' ? " $reason" : '');
		my @allowed = acceptable($cert, $t0, $t1);

		$count{window}++ if @allowed > 1;
		$count{$got}++;

		push @mismatch, "$line: expected " . join(' or ', @allowed)
			unless grep { $_ eq $got } @allowed;
	}
}

my $log = Mtls::slurp("$d/error.log");
my @bad_log = grep { /\[(alert|crit)\]|exited on signal|exited with fatal/ }
	split /\n/, $log;
my @refused = grep { /\[emerg\] $master#/ } split /\n/, $log;
my $live_reloads = () = $log =~ /mtls: reloaded "/g;
my $rejected = () = $log =~ /previous data stays in force/g;

printf "soak: %d s, %d requests (%s), %.0f/s\n", $o{duration}, $count{total},
	join(', ', map { "$_ " . ($count{$_} // 0) } qw/new keepalive h2/),
	$count{total} / $o{duration};
printf "soak: outcomes: %s\n", join(', ', map { "$_: $count{$_}" }
	sort grep { /^\d{3} / } keys %count);
printf "soak: %d in a transition window, %d dropped by a closing "
	. "keep-alive/h2 connection (retried)\n",
	$count{window} // 0, $count{dropped} // 0;
printf "soak: changes: %s\n",
	join(', ', map { "$_ $actions{$_}" } sort keys %actions);
printf "soak: reloads: %s, refused by the master: %d; loader: %d files "
	. "loaded, %d rejected\n",
	join(', ', map { "$_ $reloads{$_}" } grep { $_ ne 'total' }
		sort keys %reloads),
	scalar(@refused), $live_reloads, $rejected;

if (@server_errors) {
	$failures++;
	printf "soak: FAIL: %d 5xx responses\n", scalar @server_errors;
	print "  $_\n" for @server_errors[0 .. min(9, $#server_errors)];
}

if (@mismatch) {
	$failures++;
	printf "soak: FAIL: %d wrong decisions\n", scalar @mismatch;
	print "  $_\n" for @mismatch[0 .. min(19, $#mismatch)];
}

if (@bad_log) {
	$failures++;
	printf "soak: FAIL: %d alerts or crashes in the error log\n",
		scalar @bad_log;
	print "  $_\n" for @bad_log[0 .. min(9, $#bad_log)];
}

if ($dead_clients) {
	$failures++;
	print "soak: FAIL: $dead_clients client processes died\n";
}

unless ($master_alive) {
	$failures++;
	print "soak: FAIL: the nginx master is gone\n";
}

printf "soak: table files in /dev/shm at the end: %d\n", scalar @tables;
if (@tables > 8) {
	$failures++;
	print "soak: FAIL: table files pile up\n";
}

open my $mfh, '>', "$d/memory.tsv" or die "can't create $d/memory.tsv: $!\n";
print $mfh "# seconds\trss_kb\tpss_kb\told_workers\tprocesses\tmaster_rss_kb\n";
print $mfh join("\t", @$_), "\n" for @memory;
close $mfh;

$failures++ unless memory_flat(@memory);

print "soak: logs and results kept in $d\n" if $o{keep};
print $failures ? "soak: FAILED\n" : "soak: OK\n";

exit($failures ? 1 : 0);

###############################################################################

sub min { $_[0] < $_[1] ? $_[0] : $_[1] }

# system() with stderr to /dev/null

sub quiet_system {
	my (@cmd) = @_;

	open my $saved, '>&', \*STDERR or die "dup: $!\n";
	open STDERR, '>', '/dev/null' or die "can't open /dev/null: $!\n";
	my $rc = system(@cmd);
	open STDERR, '>&', $saved or die "dup: $!\n";

	return $rc;
}

sub deny_list {
	my ($revoked) = @_;

	my $list = "# soak deny list\n"
		. "sha256:" . ('00' x 32) . "\n"
		. "DEAD:BEEF\n";
	$list .= $revoked
		? (rand() < 0.5 ? "$bob_serial\n" : "sha256:$bob_fp\n")
		: "# bob is fine\n";

	return $list;
}

sub make_crl {
	my ($revoked, $number, $file) = @_;
	$pki->crl('soak.crl', ca => 'ca', number => $number,
		revoke => $revoked ? [ 'carol' ] : [], file => $file);
}

# one random change of the files; returns what it did.  A broken file is
# restored by the next change, so that most reloads find good files.

my $broken;

sub change {
	my $what = int rand(10);
	my $now;

	if (defined $broken) {
		# the data in force, written again: no change of state
		if ($broken eq 'deny') {
			Mtls::write_atomic("$d/deny.txt", deny_list($state{bob}));
		} else {
			make_crl($state{carol}, ++$crl_number, "$d/ca.crl.new");
			rename("$d/ca.crl.new", "$d/ca.crl") or die "rename: $!\n";
		}
		undef $broken;
		return 'restore';
	}

	$broken = $what == 6 ? 'deny' : 'crl' if $what >= 6;

	if ($what < 3) {
		# a good deny list, bob in or out
		my $revoked = $state{bob} ? 0 : 1;
		Mtls::write_atomic("$d/deny.txt", deny_list($revoked));
		$now = time();
		$state{bob} = $revoked;
		push @timeline, [ $now, { %state }, 'deny list' ];
		return 'deny list';
	}

	if ($what < 6) {
		# a good CRL with the next number, carol in or out
		my $revoked = $state{carol} ? 0 : 1;
		make_crl($revoked, ++$crl_number, "$d/ca.crl.new");
		rename("$d/ca.crl.new", "$d/ca.crl") or die "rename: $!\n";
		$now = time();
		$state{carol} = $revoked;
		push @timeline, [ $now, { %state }, 'crl' ];
		return 'crl';
	}

	if ($what == 6) {
		# a deny list truncated to nothing, or with a line that is
		# not an entry
		Mtls::write_atomic("$d/deny.txt", rand() < 0.5 ? ''
			: deny_list(!$state{bob}) . "not-a-serial\n");
		return 'corrupt deny list';
	}

	if ($what == 7) {
		# a CRL cut in the middle (in place, as a careless copy does)
		my $good = Mtls::slurp("$d/ca.crl");
		Mtls::spew("$d/ca.crl", substr($good, 0, length($good) / 2));
		return 'truncated crl';
	}

	if ($what == 8) {
		# a CRL older than the one in force, saying the opposite
		make_crl(!$state{carol}, $crl_number - 1, "$d/ca.crl.new");
		rename("$d/ca.crl.new", "$d/ca.crl") or die "rename: $!\n";
		return 'older crl';
	}

	# random bytes in place of the CRL
	Mtls::write_atomic("$d/ca.crl", join '', map { chr rand 256 } 1 .. 700);
	return 'garbage crl';
}

# the outcomes a request made between t0 and t1 may have: those of every
# state in force at some time in [t0 - grace, t1]

sub acceptable {
	my ($cert, $t0, $t1) = @_;

	my %ok;

	for my $i (0 .. $#timeline) {
		my $from = $timeline[$i][0];
		my $to = $i < $#timeline ? $timeline[$i + 1][0] + $grace : 9e9;
		next if $from > $t1 || $to < $t0;
		$ok{expected($cert, $timeline[$i][1])} = 1;
	}

	return sort keys %ok;
}

sub expected {
	my ($cert, $s) = @_;

	return '403 deny not_allowed' if $cert eq 'dave';
	return '403 deny revoked' if $cert eq 'bob' && $s->{bob};
	return '403 deny revoked' if $cert eq 'carol' && $s->{carol};
	return '200 allow';
}

###############################################################################

# a client process: requests until $end, one line each in $file

sub client {
	my ($kind, $file, $end, $seed) = @_;

	srand($$ ^ $seed);
	$SIG{__WARN__} = sub {};

	open my $out, '>', $file or die "can't create $file: $!\n";
	$out->autoflush(1);

	my $record = sub {
		my ($t0, $cert, $r) = @_;
		my $t1 = time();
		my $st = Mtls::outcome($r);
		my ($status, $decision, $reason) = split / /, $st;
		$decision //= '-';
		$reason //= '';
		printf $out "%.4f %.4f %s %s %s %s %s\n", $t0, $t1, $kind, $cert,
			$status, $decision, $reason;
	};

	while (time() < $end) {
		my $cert = $certs[rand @certs];

		if ($kind eq 'new') {
			my $t0 = time();
			my $r = Mtls::https_get($port, '/', "$d/$cert");
			if (defined $r) {
				$record->($t0, $cert, $r);
			} else {
				printf $out "%.4f %.4f %s %s failed - \n", $t0, time(),
					$kind, $cert;
			}
			next;
		}

		# a connection for a few dozen requests, then another
		my $n = 10 + int rand(50);
		my $c = $kind eq 'h2'
			? Mtls::H2->new(port => $port, cert => "$d/$cert")
			: Mtls::KeepAlive->new(port => $port, cert => "$d/$cert");

		unless ($c) {
			printf $out "%.4f %.4f %s %s failed - \n", time(), time(),
				$kind, $cert;
			next;
		}

		my $first = 1;

		while ($n-- > 0 && time() < $end) {
			my $t0 = time();
			# Protocol::HTTP2 dies on a request after the server's GOAWAY:
			# nothing was sent, take a new connection
			my @r = eval {
				$kind eq 'h2' ? $c->get_many(('/') x 4) : ($c->get('/'))
			};
			last if $@;

			my $gone = grep { !defined || $_->{status} eq 'reset' } @r;

			for my $r (@r) {
				if (defined $r && $r->{status} ne 'reset') {
					$record->($t0, $cert, $r);
				} else {
					# a request on a connection the server closed (a
					# reload, keepalive_requests) is retried on a new
					# one; on the first request it is a failure
					printf $out "%.4f %.4f %s %s %s - \n", $t0, time(),
						$kind, $cert, $first ? 'failed' : 'dropped';
				}
			}

			last if $gone || ($kind eq 'keepalive' && !$c->{s});
			$first = 0;
		}

		$c->close();
	}

	close $out;
}

###############################################################################

# memory: [ RSS, PSS ] in kB summed over the master and its children, and
# whether a worker was shutting down (an old one, after a reload)

sub memory {
	my ($master) = @_;

	my @pids = ($master);
	my $old = 0;

	for my $stat (glob '/proc/[0-9]*/stat') {
		open my $fh, '<', $stat or next;
		my $line = <$fh> // next;
		my @f = split ' ', substr($line, rindex($line, ')') + 1);
		next unless $f[1] == $master;
		my ($pid) = $stat =~ m!/proc/(\d+)/!;
		push @pids, $pid;
		my $cmd = eval { Mtls::slurp("/proc/$pid/cmdline") } // '';
		$old = 1 if $cmd =~ /shutting down/;
	}

	my ($rss, $pss, $master_rss) = (0, 0, 0);

	for my $pid (@pids) {
		open my $fh, '<', "/proc/$pid/smaps_rollup" or return undef;
		while (<$fh>) {
			$rss += $1 if /^Rss:\s+(\d+)/;
			$pss += $1 if /^Pss:\s+(\d+)/;
			$master_rss += $1 if /^Rss:\s+(\d+)/ && $pid == $master;
		}
	}

	return [ $rss, $pss, $old, scalar @pids, $master_rss ];
}

# flat: the medians of the second quarter of the run (after the warm-up)
# and of the last quarter, counting only samples without old workers still
# shutting down, differ by less than the tolerance, for the RSS of the
# master (which lives through every reload) and for the RSS of all
# processes; PSS, which moves with what the workers share with the master
# after each fork, is shown only.  A worker's own leaks end with it at the
# next reload: scripts/sanitize looks for those.

sub memory_flat {
	my @steady = grep { !$_->[3] && $_->[4] == $o{workers} + 1 } @_;

	my $n = @steady;
	if ($n < 8) {
		print "soak: FAIL: too few memory samples ($n)\n";
		return 0;
	}

	my @q2 = @steady[int($n / 4) .. int($n / 2) - 1];
	my @q4 = @steady[int(3 * $n / 4) .. $n - 1];

	my $median = sub {
		my ($col, @s) = @_;
		my @v = sort { $a <=> $b } map { $_->[$col] } @s;
		return $v[int(@v / 2)];
	};

	my $flat = 1;

	for my $m ([ 'RSS of the master', 5, 1 ], [ 'RSS, all', 1, 1 ],
		[ 'PSS, all', 2, 0 ])
	{
		my ($name, $col, $checked) = @$m;
		my ($from, $to) = ($median->($col, @q2), $median->($col, @q4));
		my $growth = ($to - $from) / $from * 100;
		my @all = sort { $a <=> $b } map { $_->[$col] } @steady;

		printf "soak: memory, %s: %d kB -> %d kB (%+.1f%%), "
			. "range %d-%d kB over %d samples\n",
			$name, $from, $to, $growth, $all[0], $all[-1], $n;

		if ($checked && $growth > $o{'memory-tolerance'}) {
			printf "soak: FAIL: %s grew by more than %.0f%%\n", $name,
				$o{'memory-tolerance'};
			$flat = 0;
		}
	}

	return $flat;
}

###############################################################################
