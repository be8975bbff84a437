package Test::Nginx;

# Test harness for nginx modules: an independent implementation of the
# public API of the Test::Nginx library of the nginx-tests suite, so that
# test files written against that API run unchanged.  See the POD at the end.

use strict;
use warnings;

use Exporter qw/import/;
use File::Path qw/rmtree/;
use File::Spec;
use File::Temp qw/tempdir/;
use IO::Socket::INET;
use POSIX ();
use Scalar::Util qw/refaddr weaken/;
use Time::HiRes qw/sleep time/;

# Loaded before our END block is compiled, so that our END (which may still
# run tests) runs before the one of Test::Builder that reports the summary.
use Test::More ();

# The same split between default and optional exports as upstream, so that
# a test file that works here imports what it needs there too.
our @EXPORT = qw/log_in log_out http http_get http_head port/;
our @EXPORT_OK = qw/http_start http_end http_content
    http_gzip_request http_gzip_like/;
our %EXPORT_TAGS = (gzip => [qw/http_gzip_request http_gzip_like/]);

our $NGINX = $ENV{TEST_NGINX_BINARY} // '/usr/sbin/nginx';

use constant {
    START_TIMEOUT => 10,    # seconds for nginx to write its pid file
    WAIT_TIMEOUT  => 5,     # waitforfile, waitforsocket, reload, daemons
    IO_TIMEOUT    => 8,     # one http() exchange
    QUIT_TIMEOUT  => 30,    # graceful shutdown before TERM is sent
    TERM_TIMEOUT  => 10,    # fast shutdown before KILL is sent
    POLL_INTERVAL => 0.05,

    # Random ports are drawn from 8000-8999, as upstream's mostly are: a
    # port number put in a configuration is then taken for a logical port by
    # write_file_expand (127.0.0.1:8NNN), as upstream would when the port
    # it prefers is taken; a configuration must say %%PORT_N%% instead.
    # Below Linux's default ephemeral range, which outgoing connections use.
    PORT_MIN => 8000,
    PORT_MAX => 8999,
};

# Modules that configure builds unless given --without-<name>_module.
my %DEFAULT_MODULES = map { $_ => 1 } qw/
    http_access http_auth_basic http_autoindex http_browser http_charset
    http_empty_gif http_fastcgi http_geo http_grpc http_gzip http_limit_conn
    http_limit_req http_map http_memcached http_mirror http_proxy
    http_referer http_rewrite http_scgi http_split_clients http_ssi
    http_upstream_hash http_upstream_ip_hash http_upstream_keepalive
    http_upstream_least_conn http_upstream_random http_upstream_zone
    http_userid http_uwsgi
    mail_imap mail_pop3 mail_smtp
    stream_access stream_geo stream_limit_conn stream_map stream_return
    stream_set stream_split_clients stream_upstream_hash
    stream_upstream_least_conn stream_upstream_random stream_upstream_zone
/;

# Features that are plain configure switches (--with-<name>), not modules.
my %SWITCHES = map { $_ => 1 } qw/compat debug mail stream threads/;

# Features that depend on the test machine rather than on nginx.
my %HOST_FEATURES = (
    cryptx     => sub { eval { require Crypt::Misc; 1 } },
    socket_ssl => \&_have_socket_ssl,
    socket_ssl_alpn =>
        sub { _have_socket_ssl() && IO::Socket::SSL->can_alpn },
    socket_ssl_sni =>
        sub { _have_socket_ssl() && IO::Socket::SSL->can_client_sni },
    socket_ssl_reused =>
        sub { _have_socket_ssl() && IO::Socket::SSL->can('get_session_reused') },
    socket_ssl_sslversion =>
        sub { _have_socket_ssl() && IO::Socket::SSL->can('get_sslversion') },
    symlink => sub { $^O ne 'MSWin32' },
    unix    => sub { $^O ne 'MSWin32' },
);

my %VERSION_INFO;   # nginx binary => its "nginx -V" output
my %PORTS;          # logical port => { port => real port, lock => handle }
my %LIVE;           # refaddr => weak reference to every instance
my $CREATED = 0;    # instances made so far, to finish them in that order

# Write end of the pipe to the watchdog process, its pid, and the pid of
# the test process that started it (see _watch).
my ($WATCHDOG, $WATCHDOG_PID, $WATCHDOG_OWNER);

###############################################################################
# Instance life cycle

sub new {
    my ($class) = @_;

    Test::More::BAIL_OUT("no $NGINX binary found") unless -x $NGINX;

    my $self = bless {
        testdir   => tempdir('nginx-test-XXXXXXXXXX', TMPDIR => 1),
        owner     => $$,     # forked daemons must not clean up
        order     => $CREATED++,
        daemons   => [],
        quitting  => [],     # daemonized masters sent QUIT by stop()
        requested => [],     # features passed to has(), in order
        globals   => {},     # expansions of %%TEST_GLOBALS*%%, once made
    }, $class;

    $LIVE{refaddr $self} = $self;
    weaken($LIVE{refaddr $self});
    _exit_on_signals();

    return $self;
}

sub testdir { return $_[0]{testdir} }

# A killing signal would skip END and leave nginx running until the
# watchdog notices: turn the usual ones (^C, a harness timeout, a closed
# output pipe) into a normal exit instead, unless the test handles them.
my @EXIT_SIGNALS = qw/HUP INT PIPE TERM/;
my $SIGNALS_OWNER = $$;
# A forked child that still has the handler (just forked, or forked by the
# test itself) must not run END blocks: those belong to the test process.
my $EXIT_HANDLER = sub { $$ == $SIGNALS_OWNER ? exit 1 : POSIX::_exit(1) };

sub _exit_on_signals {
    for my $sig (@EXIT_SIGNALS) {
        next if defined $SIG{$sig} && $SIG{$sig} ne '' && $SIG{$sig} ne 'DEFAULT';
        $SIG{$sig} = $EXIT_HANDLER;
    }
    return;
}

sub DESTROY {
    my ($self) = @_;
    $self->_finish;
    delete $LIVE{refaddr $self};
    return;
}

# An instance in a plain file-scoped lexical is destroyed before the END
# blocks run, and finished there.  One still alive here is kept by a named
# sub that uses it, or by a global: upstream would destroy it only during
# global destruction, after Test::More has ended, and its checks would
# break the test file.  Such an instance fails here, then is finished.
END {
    local $?;    # the exit status of the test file
    my @left = sort { $a->{order} <=> $b->{order} }
        grep { defined && !$_->{finished} && $_->{owner} == $$ } values %LIVE;
    for my $self (@left) {
        if (Test::More->builder->expected_tests) {
            Test::More::ok(0, 'Test::Nginx instance freed before END');
            Test::More::diag("$self->{testdir}: still referenced at END, by a "
                . 'named sub or a global? Pass the instance to subs instead');
        }
        $self->_finish;
    }
    _stop_watchdog();
}

sub _finish {
    my ($self) = @_;
    return if $self->{finished} || $self->{owner} != $$;
    $self->{finished} = 1;

    # Keep the exit status of the test file, whatever we run here.
    local ($?, $@, $!);
    # The output may be gone (a harness that quit): clean up nevertheless.
    local $SIG{PIPE} = 'IGNORE';

    # Where stop() dies, upstream's DESTROY ends there, without its checks:
    # so that plans agree, neither are ours made.
    my $stopped = eval { $self->stop; 1 } or Test::More::diag("Can't stop nginx: $@");
    $self->_stop_master($_) for splice @{$self->{quitting}};
    $self->stop_daemons;
    $self->_check_error_logs if $stopped && Test::More->builder->expected_tests;

    my $dir = $self->{testdir};
    Test::More::diag(_slurp("$dir/error.log")) if $ENV{TEST_NGINX_CATLOG};

    if ($ENV{TEST_NGINX_LEAVE}) {
        Test::More::diag("test directory kept: $dir");
    } else {
        rmtree($dir);
    }
    return;
}

###############################################################################
# Features and plan

sub has {
    my ($self, @features) = @_;
    for my $feature (@features) {
        Test::More::plan(skip_all => "no $feature available")
            unless $self->has_feature($feature);
        push @{$self->{requested}}, $feature;
    }
    return $self;
}

sub has_feature {
    my ($self, $feature) = @_;

    return $HOST_FEATURES{$feature}->() ? 1 : 0 if $HOST_FEATURES{$feature};
    return $self->_has_openssl($1) if $feature =~ /^openssl:([\d.]+)$/;
    return $self->has_module($feature);
}

sub has_module {
    my ($self, $feature) = @_;
    my $args = $self->_configure_args;

    return $args !~ /--without-http(?!\S)/ if $feature eq 'http';
    return $args !~ /--without-http-cache(?!\S)/ if $feature eq 'cache';
    return $args !~ /--without-pcre(?!\S)/ if $feature eq 'pcre';
    return _nginx_v() =~ /TLS SNI support enabled/ ? 1 : 0 if $feature eq 'sni';

    my $module = _module_name($feature);

    # stream_* and mail_* modules are useless without their core module.
    if ($module =~ /^(stream|mail)_/) {
        return 0 unless $self->has_module($1);
    }

    return $args !~ /--without-${module}_module(?!\S)/ ? 1 : 0
        if $DEFAULT_MODULES{$module};

    my $option = $SWITCHES{$module} ? "--with-$module" : "--with-${module}_module";
    return 0 unless $args =~ /(?:^|\s)\Q$option\E(=dynamic)?(?!\S)/;

    # A dynamic module is there only if its shared object is installed.
    return !$1 || defined $self->_dynamic_module_file($module) ? 1 : 0;
}

sub has_version {
    my ($self, $version) = @_;
    my ($have) = _nginx_v() =~ m{nginx version: [^/\s]+/([\d.]+)}
        or die "Can't find the version of $NGINX\n";
    return _version_at_least($have, $version);
}

sub has_daemon {
    my ($self, $program) = @_;
    Test::More::plan(skip_all => "$program not found")
        unless _find_program($program);
    return $self;
}

# The two checks of error.log that every instance adds at its end, see
# _finish(): those of this one are counted here, those of any other
# instance the test file counts itself.
sub plan {
    my ($self, $count) = @_;
    Test::More::plan(tests => $count + 2);
    return $self;
}

sub todo_alerts {
    my ($self) = @_;
    $self->{todo_alerts} = 1;
    return $self;
}

# "rewrite" is the module http_rewrite; names with a prefix and configure
# switches stay as they are.
sub _module_name {
    my ($feature) = @_;
    return $feature if $SWITCHES{$feature} || $feature =~ /^(?:http|stream|mail)_/;
    return "http_$feature";
}

sub _nginx_v {
    return $VERSION_INFO{$NGINX} //= do {
        my $pid = open(my $pipe, '-|') // die "Can't fork: $!\n";
        if ($pid == 0) {
            open STDERR, '>&', \*STDOUT or POSIX::_exit(127);
            exec { $NGINX } $NGINX, '-V' or POSIX::_exit(127);
        }
        local $/;
        local $?;    # set by close()
        my $output = <$pipe> // '';
        close $pipe;
        $output =~ /nginx version:/ or die "Can't run $NGINX -V\n";
        $output;
    };
}

sub _configure_args {
    my ($args) = _nginx_v() =~ /^configure arguments:(.*)$/m;
    return $args // '';
}

sub _has_openssl {
    my ($self, $need) = @_;
    # Both the build and the run time library (when they differ) must do.
    my @versions = _nginx_v() =~ /with OpenSSL (\d[\d.]*)/g or return 0;
    return (grep { !_version_at_least($_, $need) } @versions) ? 0 : 1;
}

sub _version_at_least {
    my ($have, $need) = @_;
    my @have = split /\./, $have;
    for my $part (split /\./, $need) {
        my $mine = shift(@have) // 0;
        return $mine > $part ? 1 : 0 if $mine != $part;
    }
    return 1;
}

sub _have_socket_ssl { return eval { require IO::Socket::SSL; 1 } ? 1 : 0 }

sub _find_program {
    my ($program) = @_;
    return -x $program if $program =~ m{/};
    return grep { -f "$_/$program" && -x _ } File::Spec->path;
}

# Shared object of a dynamic module: in TEST_NGINX_MODULES (as upstream),
# the configured modules path (a packaged nginx) or beside the binary (objs/
# of a source tree).
sub _dynamic_module_file {
    my ($self, $module) = @_;
    my $args = $self->_configure_args;

    my ($modules) = $args =~ /--modules-path=(\S+)/;
    unless (defined $modules) {
        my ($prefix) = $args =~ /--prefix=(\S+)/;
        $modules = ($prefix // '/usr/local/nginx') . '/modules';
    }
    my ($volume, $bindir) = File::Spec->splitpath($NGINX);

    (my $file = "ngx_${module}_module.so") =~ s/^ngx_http_xslt_/ngx_http_xslt_filter_/;
    for my $dir (grep { defined } $ENV{TEST_NGINX_MODULES}, $modules,
        File::Spec->catpath($volume, $bindir, ''))
    {
        my $path = File::Spec->catfile($dir, $file);
        return File::Spec->rel2abs($path) if -f $path;
    }
    return;
}

# load_module lines for the dynamic modules behind the features asked for
# with has(), core modules first, skipping what TEST_NGINX_GLOBALS loads.
sub _load_modules {
    my ($self) = @_;
    my $globals = $ENV{TEST_NGINX_GLOBALS} // '';
    my (@files, %seen);

    for my $feature (@{$self->{requested}}) {
        next if $HOST_FEATURES{$feature} || $feature =~ /:/;
        my $module = _module_name($feature);
        my @modules = $module =~ /^(stream|mail)_/ ? ($1, $module) : ($module);
        for my $file (map { $self->_dynamic_module_file($_) } @modules) {
            next if !defined $file || $seen{$file}++;
            my ($name) = $file =~ m{([^/]+)$};
            push @files, $file unless $globals =~ /\Q$name\E/;
        }
    }
    return join '', map { "load_module $_;\n" } @files;
}

###############################################################################
# Files

sub write_file {
    my ($self, $name, $content) = @_;
    my $path = "$self->{testdir}/$name";
    open my $fh, '>', $path or die "Can't create $path: $!\n";
    binmode $fh;
    print {$fh} $content;
    close $fh or die "Can't write $path: $!\n";
    return $self;
}

sub write_file_expand {
    my ($self, $name, $content) = @_;

    $content =~ s/%%TEST_GLOBALS%%/$self->test_globals/ge;
    $content =~ s/%%TEST_GLOBALS_HTTP%%/$self->test_globals_http/ge;
    $content =~ s/%%TEST_GLOBALS_STREAM%%/$self->test_globals_stream/ge;
    $content =~ s/%%TESTDIR%%/$self->{testdir}/g;

    # Like upstream, a literal loopback port 8000-8999 is a logical port.
    $content =~ s/127\.0\.0\.1:(8\d\d\d)/'127.0.0.1:' . port($1)/ge;
    $content =~ s/%%PORT_(\d+)%%/port($1)/ge;
    $content =~ s/%%PORT_(\d+)_UDP%%/port($1, udp => 1)/ge;

    return $self->write_file($name, $content);
}

sub read_file {
    my ($self, $name) = @_;
    return _read("$self->{testdir}/$name");
}

sub _read {
    my ($path) = @_;
    open my $fh, '<', $path or die "Can't open $path: $!\n";
    binmode $fh;
    local $/;
    return scalar(<$fh>) // '';
}

# For files that nginx may not have written (yet).
sub _slurp {
    my ($path) = @_;
    return -e $path ? _read($path) : '';
}

# Each expansion is made once per instance, with the environment of that
# moment, and reused, as upstream does.  Once %%TEST_GLOBALS%% has been
# expanded, run() no longer passes pid and error_log with -g: the
# configuration is expected to carry them.
sub test_globals {
    my ($self) = @_;
    my $dir = $self->{testdir};
    return $self->{globals}{main} //= "pid $dir/nginx.pid;\n"
        . "error_log $dir/error.log debug;\n"
        . _env_lines('TEST_NGINX_GLOBALS')
        . $self->_load_modules;
}

sub test_globals_http {
    my ($self) = @_;
    my $dir = $self->{testdir};

    return $self->{globals}{http} //= do {
        my $globals = "root $dir;\n"
            . "access_log $dir/access.log;\n"
            . "client_body_temp_path $dir/client_body_temp;\n";
        # The directive does not exist when its module is configured out.
        for my $module (qw/fastcgi proxy uwsgi scgi/) {
            $globals .= "${module}_temp_path $dir/${module}_temp;\n"
                if $self->has_module($module);
        }
        $globals . _env_lines('TEST_NGINX_GLOBALS_HTTP');
    };
}

sub test_globals_stream {
    my ($self) = @_;
    return $self->{globals}{stream} //= _env_lines('TEST_NGINX_GLOBALS_STREAM');
}

sub _env_lines {
    my ($name) = @_;
    my $value = $ENV{$name} // '';
    return $value eq '' || $value =~ /\n\z/ ? $value : "$value\n";
}

###############################################################################
# Ports

# The same real port for a logical port during the whole test file, as in
# upstream: the port is reserved by a socket of the other protocol bound to
# it (UDP for a TCP port, a TCP listener for a UDP port) and held until
# exit, so that no other test file, with either library, picks it while
# nginx can still bind it.  With "socket => 1", that socket is returned,
# to be closed where the port is needed for both protocols.
sub port {
    my ($logical, %opts) = @_;
    # Not "//=", which would add an undefined entry that _allocate_port()
    # then finds in %PORTS.
    $PORTS{$logical} = _allocate_port($opts{udp}) unless $PORTS{$logical};
    return $opts{socket} ? $PORTS{$logical}{lock} : $PORTS{$logical}{port};
}

sub _allocate_port {
    my ($udp) = @_;
    my %taken = map { $_->{port} => 1 } values %PORTS;
    for (1 .. 200) {
        my $port = PORT_MIN + int rand(PORT_MAX - PORT_MIN + 1);
        next if $taken{$port};
        my $lock = _bind_port($port, !$udp) or next;
        return { port => $port, lock => $lock } if _bind_port($port, $udp);
    }
    die "Can't find a free port\n";
}

sub _bind_port {
    my ($port, $udp) = @_;
    return IO::Socket::INET->new(Proto => 'udp', LocalAddr => "127.0.0.1:$port")
        if $udp;
    return IO::Socket::INET->new(Proto => 'tcp', Listen => 1, ReuseAddr => 1,
        LocalAddr => "127.0.0.1:$port");
}

###############################################################################
# nginx processes

# With a file name, its content (expanded) becomes nginx.conf first.
sub run {
    my ($self, $conf) = @_;
    $self->write_file_expand('nginx.conf', _read($conf)) if defined $conf;
    unless ($self->_start) {
        Test::More::diag(_slurp("$self->{testdir}/stderr"));
        die "Can't start nginx\n";
    }
    return $self;
}

sub try_run {
    my ($self, $message) = @_;
    unless (eval { $self->_start }) {
        if ($ENV{TEST_NGINX_VERBOSE}) {
            Test::More::note(_slurp("$self->{testdir}/nginx.conf"));
            Test::More::note(_slurp("$self->{testdir}/stderr"));
        }
        Test::More::plan(skip_all => $message);
    }
    return $self;
}

# Starts nginx; true once its master process has written the pid file.
sub _start {
    my ($self) = @_;
    my $dir = $self->{testdir};
    # Upstream's run() takes a pid file that is there for nginx's, without
    # waiting for nginx (e.g. the empty one that "nginx -t" leaves): refused.
    die "Can't start nginx: $dir/nginx.pid is there already\n" if -e "$dir/nginx.pid";

    my @command = ($NGINX, $self->_arguments);
    Test::More::note("starting: @command") if $ENV{TEST_NGINX_VERBOSE};

    # Messages written before the error log is open (and sanitizer
    # reports) go to stderr: keep them for the failure message and checks.
    my $launcher = _spawn(sub {
        open STDERR, '>>', "$dir/stderr" or die "Can't open $dir/stderr: $!\n";
        exec { $command[0] } @command or die "Can't exec $NGINX: $!\n";
    });
    _watch($launcher);

    my $master = $self->_wait_for_master($launcher) or return 0;
    _watch($master) if $master != $launcher;
    @{$self}{qw/started master launcher/} = (1, $master, $launcher);
    return 1;
}

sub _arguments {
    my ($self) = @_;
    my $dir = $self->{testdir};
    my @arguments = ('-p', "$dir/", '-c', 'nginx.conf');
    push @arguments, '-e', 'error.log' if $self->has_version('1.19.5');
    push @arguments, '-g', "pid $dir/nginx.pid; error_log $dir/error.log debug;"
        unless defined $self->{globals}{main};
    return @arguments;
}

# Without "daemon off;", the process we started exits as soon as nginx is
# daemonized, with status 0; a non-zero status means that nginx failed.
sub _wait_for_master {
    my ($self, $launcher) = @_;
    my $deadline = time + START_TIMEOUT;
    my $launcher_done;
    local $?;    # waitpid() must not change what the test sees

    while (time < $deadline) {
        my $master = $self->_master_pid;
        return $master if $master && _alive($master);

        if (!$launcher_done && waitpid($launcher, POSIX::WNOHANG()) == $launcher) {
            return 0 if $? != 0;
            $launcher_done = 1;
        }
        sleep POLL_INTERVAL;
    }

    # Hanging: leave nothing behind.
    kill KILL => grep { $_ } $self->_master_pid, $launcher_done ? () : $launcher;
    _wait_gone($launcher, TERM_TIMEOUT);
    return 0;
}

# "nginx -T" of the configuration, with what run() would pass; its output.
sub dump_config {
    my ($self) = @_;
    my $pid = open(my $pipe, '-|') // die "Can't fork: $!\n";
    if ($pid == 0) {
        open STDERR, '>&', \*STDOUT or POSIX::_exit(127);
        exec { $NGINX } $NGINX, '-T', $self->_arguments or POSIX::_exit(127);
    }
    local $/;
    local $?;    # set by close()
    my $output = <$pipe> // '';
    close $pipe;
    return $output;
}

sub _master_pid {
    my ($self) = @_;
    my ($pid) = _slurp("$self->{testdir}/nginx.pid") =~ /^(\d+)\s*$/;
    return $pid;
}

# Sends SIGHUP and returns at once, as upstream does: a test that needs the
# new configuration in force waits for it itself.
sub reload {
    my ($self) = @_;
    return $self unless $self->{started};
    kill HUP => $self->_master_pid // die "Can't open nginx.pid\n";
    return $self;
}

# Stops nginx only; the daemons run until stop_daemons() or the end.
# Like upstream, it stops the master named by nginx.pid, and dies without
# one (nginx exited by itself): only after stopping the one it started.
# Like upstream, it waits only for a master that is its own child ("daemon
# off;"): a daemonized one is sent QUIT, and a test that starts nginx again
# waits for it to be gone itself; the end of the test file waits for it.
sub stop {
    my ($self) = @_;
    return $self unless $self->{started};
    my $master = $self->_master_pid;
    my $stopping = $master // $self->{master};
    if ($stopping == $self->{launcher}) {
        $self->_stop_master($stopping);
    } else {
        kill QUIT => $stopping;
        push @{$self->{quitting}}, $stopping;
    }
    $self->{started} = 0;
    die "Can't open nginx.pid\n" unless defined $master;
    return $self;
}

sub _stop_master {
    my ($self, $master) = @_;

    kill QUIT => $master;
    return if _wait_gone($master, QUIT_TIMEOUT);

    Test::More::diag(sprintf 'nginx did not quit in %d s, sending TERM', QUIT_TIMEOUT);
    kill TERM => $master;
    return if _wait_gone($master, TERM_TIMEOUT);

    Test::More::diag('nginx did not terminate, killing it');
    # The master leads the process group of nginx: workers would outlive it.
    kill KILL => -$master;
    _wait_gone($master, TERM_TIMEOUT);
    return;
}

sub run_daemon {
    my ($self, $daemon, @args) = @_;
    my $pid = _spawn(sub {
        return $daemon->(@args) if ref $daemon eq 'CODE';
        exec { $daemon } $daemon, @args or die "Can't exec $daemon: $!\n";
    });
    _watch($pid);
    push @{$self->{daemons}}, $pid;
    return $self;
}

sub stop_daemons {
    my ($self) = @_;
    my @pids = splice @{$self->{daemons}};
    kill TERM => @pids;
    for my $pid (@pids) {
        next if _wait_gone($pid, WAIT_TIMEOUT);
        kill KILL => $pid;
        _wait_gone($pid, WAIT_TIMEOUT);
    }
    return $self;
}

sub waitforfile {
    my ($self, $file, $pid) = @_;
    my $deadline = time + WAIT_TIMEOUT;
    while (1) {
        return 1 if -e $file;
        # One more look after the process exited: it may have just written it.
        my $gone = defined $pid && !_alive($pid);
        return 0 if time >= $deadline;
        sleep POLL_INTERVAL;
        return -e $file ? 1 : 0 if $gone;
    }
}

sub waitforsocket {
    my ($self, $peer) = @_;
    my $deadline = time + WAIT_TIMEOUT;
    while (time < $deadline) {
        return 1 if IO::Socket::INET->new(Proto => 'tcp', PeerAddr => $peer,
            Timeout => 1);
        sleep POLL_INTERVAL;
    }
    return 0;
}

# Runs $code in a child process, which never returns into the test file:
# it must neither print test results nor run END blocks.  The child leads
# a process group of its own, so that killing the group stops the workers
# of nginx too, and so that ^C on the terminal reaches the test only.
sub _spawn {
    my ($code) = @_;
    STDOUT->flush;
    STDERR->flush;
    my $pid = fork // die "Can't fork: $!\n";
    return $pid if $pid;

    setpgrp(0, 0);
    close $WATCHDOG if $WATCHDOG;
    my $ok = eval { $code->(); 1 };
    print STDERR $@ unless $ok;
    POSIX::_exit($ok ? 0 : 1);
}

sub _wait_gone {
    my ($pid, $timeout) = @_;
    my $deadline = time + $timeout;
    local $?;    # waitpid() must not change what the test sees
    while (1) {
        waitpid($pid, POSIX::WNOHANG());    # reaps our own children
        return 1 unless _alive($pid);
        return 0 if time >= $deadline;
        sleep POLL_INTERVAL;
    }
}

# A daemonized master is not our child: once it exits, it may stay a zombie
# if nobody reaps orphans (PID 1 of some containers), so look at its state.
sub _alive {
    my ($pid) = @_;
    return 0 unless kill(0, $pid) || $!{EPERM};
    return 1 unless -d '/proc/self';
    my $stat = _process_stat($pid) or return 0;
    return $stat->{state} =~ /^[ZX]$/ ? 0 : 1;
}

sub _process_stat {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return;
    my $line = <$fh> // return;
    # The command name in parentheses may contain anything: skip past it.
    my @fields = split ' ', substr($line, rindex($line, ')') + 1);
    return unless @fields > 19;
    return { state => $fields[0], ppid => $fields[1], start => $fields[19] };
}

###############################################################################
# Watchdog

# Every process we start is reported to a watchdog process, which stops the
# ones still running once the test process is gone.  Normally nothing is
# left by then, but a test process killed outright (SIGKILL, or a signal
# that the test handles by itself) has no chance to clean up.
sub _watch {
    my ($pid) = @_;
    my $stat = _process_stat($pid) or return;
    _start_watchdog() unless $WATCHDOG;
    local $SIG{PIPE} = 'IGNORE';
    syswrite $WATCHDOG, "$pid $stat->{start}\n";
    return;
}

sub _start_watchdog {
    pipe(my $reader, $WATCHDOG) or die "Can't create a pipe: $!\n";
    $WATCHDOG_OWNER = $$;
    $WATCHDOG_PID = _spawn(sub {
        # Not to keep the harness waiting for the end of the test's output.
        open STDOUT, '>', File::Spec->devnull;
        # The end of the pipe comes when the test process has exited, as
        # spawned children close their copy of the write end.
        my @watched = map { [split] } <$reader>;
        my @left = _leftovers(@watched) or return;

        print STDERR "Test::Nginx: stopping leftover processes",
            (map { " $_->[0]" } @left), "\n";
        kill TERM => map { -$_->[0] } @left;
        my $deadline = time + TERM_TIMEOUT;
        sleep POLL_INTERVAL while _leftovers(@left) && time < $deadline;
        kill KILL => map { -$_->[0] } _leftovers(@left);
    });
    close $reader;
    return;
}

# Of [pid, start time] pairs, those still running; the start time tells
# whether the pid was reused by an unrelated process since.
sub _leftovers {
    return grep {
        my $stat = _process_stat($_->[0]);
        $stat && $stat->{start} == $_->[1] && $stat->{state} !~ /^[ZX]$/;
    } @_;
}

# At the normal end everything is stopped already: the watchdog just exits.
sub _stop_watchdog {
    return unless $WATCHDOG && $WATCHDOG_OWNER == $$;
    close $WATCHDOG;
    undef $WATCHDOG;
    _wait_gone($WATCHDOG_PID, 1);
    return;
}

###############################################################################
# Checks added to the plan

# Run for every instance once a plan is set, as upstream does.  An
# instance that never started nginx has no error.log: upstream then adds
# no test (its check dies), and neither do we, so that plans agree.
sub _check_error_logs {
    my ($self) = @_;
    my $dir = $self->{testdir};
    my $builder = Test::More->builder;

    unless (-e "$dir/error.log") {
        Test::More::diag("no error.log in $dir: its checks are left out");
        return;
    }
    my $log = _read("$dir/error.log");

    my @alerts = $log =~ /^(.*\[alert\].*)$/mg;
    $builder->todo_start('alerts') if $self->{todo_alerts};
    Test::More::is(join("\n", @alerts), '', 'no alerts');
    $builder->todo_end if $self->{todo_alerts};

    my @reports = grep { /\w+Sanitizer|runtime error:/ }
        split /\n/, $log . _slurp("$dir/stderr");
    Test::More::is(join("\n", @reports), '', 'no sanitizer errors');
    return;
}

###############################################################################
# HTTP client

sub http_get {
    my ($url, %extra) = @_;
    return http("GET $url HTTP/1.0\r\nHost: localhost\r\n\r\n", %extra);
}

sub http_head {
    my ($url, %extra) = @_;
    return http("HEAD $url HTTP/1.0\r\nHost: localhost\r\n\r\n", %extra);
}

sub http_gzip_request {
    my ($url, %extra) = @_;
    return http("GET $url HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        . "Accept-Encoding: gzip\r\n\r\n", %extra);
}

sub http {
    my ($request, %extra) = @_;
    my $s = http_start($request, %extra);
    return $s if $extra{start} || !defined $s;
    return http_end($s);
}

# Sends the request (to port 8080, or 8443 with SSL, unless PeerAddr or
# socket says otherwise); then, after "sleep" seconds, the body, unless
# "aborted".  Returns the socket, or undef when that fails.  Like the other
# client functions, it returns undef rather than an empty list, as results
# are passed straight to like() and friends.
sub http_start {
    my ($request, %extra) = @_;
    return _with_timeout(sub {
        my $s = $extra{socket} // _connect(%extra);
        _start_ssl($s, %extra) if $extra{SSL};
        _send($s, $request);
        sleep $extra{sleep} if $extra{sleep};
        _send($s, $extra{body}) if defined $extra{body} && !$extra{aborted};
        return $s;
    });
}

# Reads the reply up to the end of the connection, then closes it.
sub http_end {
    my ($s) = @_;
    my $reply = _with_timeout(sub {
        local $/;
        my $reply = $s->getline // '';
        $s->close;
        return $reply;
    });
    log_in($reply) if defined $reply;
    return $reply;
}

# The body of a reply, chunks joined; undef without a blank line after the
# head, "[no-last-chunk]" appended when the chunk of size 0 is missing.
sub http_content {
    my ($reply) = @_;
    return undef unless defined $reply;

    my ($head, $body) = split /\x0d?\x0a\x0d?\x0a/, $reply, 2;
    return undef unless defined $body;
    return $body unless $head =~ /^Transfer-Encoding:\s*chunked\s*$/mi;

    my $content = '';
    while ($body =~ s/^([0-9a-fA-F]+)[^\x0a]*\x0a//) {
        my $size = hex $1 or return $content;
        $content .= substr $body, 0, $size, '';
        $body =~ s/^\x0d?\x0a//;
    }
    return $content . '[no-last-chunk]';
}

sub http_gzip_like {
    my ($reply, $re, $name) = @_;
    require IO::Uncompress::Gunzip;
    local $Test::Builder::Level = $Test::Builder::Level + 1;

    my $content = http_content($reply) // '';
    my $plain;
    IO::Uncompress::Gunzip::gunzip(\$content => \$plain);
    return Test::More::like($plain, $re, $name);
}

sub _with_timeout {
    my ($code) = @_;
    my $result = eval {
        local $SIG{ALRM} = sub { die "timeout\n" };
        local $SIG{PIPE} = sub { die "sigpipe\n" };
        alarm IO_TIMEOUT;
        my $result = $code->();
        alarm 0;
        $result;
    };
    alarm 0;
    log_in("died: $@") unless defined $result;
    return $result;
}

sub _connect {
    my (%extra) = @_;
    # IO::Socket options given by the caller (PeerAddr, LocalAddr...).
    my %options = map { $_ => $extra{$_} } grep { /^(?:Peer|Local)/ } keys %extra;
    return IO::Socket::INET->new(
        Proto    => 'tcp',
        PeerAddr => '127.0.0.1:' . port($extra{SSL} ? 8443 : 8080),
        Timeout  => IO_TIMEOUT,
        %options,
    ) || die "Can't connect to nginx: $!\n";
}

sub _start_ssl {
    my ($s, %extra) = @_;
    require IO::Socket::SSL;
    my %ssl = map { $_ => $extra{$_} } grep { /^SSL_/ } keys %extra;
    IO::Socket::SSL->start_SSL($s,
        SSL_verify_mode => IO::Socket::SSL::SSL_VERIFY_NONE(), %ssl)
        or die 'SSL handshake failed: ' . IO::Socket::SSL::errstr() . "\n";
    # A handshake put off by the caller has no cipher yet.
    log_in('ssl cipher: ' . $s->get_cipher) unless defined $extra{SSL_startHandshake};
    return $s;
}

sub _send {
    my ($s, $data) = @_;
    log_out($data);
    $s->print($data) or die "Can't send: $!\n";
    return;
}

sub log_out { return _log('>> ', @_) }
sub log_in  { return _log('<< ', @_) }

sub _log {
    my ($prefix, $message) = @_;
    return unless $ENV{TEST_NGINX_VERBOSE};
    $message //= '';
    $message =~ s/\x0d$//mg;    # a terminal would overwrite lines
    $message =~ s/^/$prefix/mg;
    Test::More::note($message);
    return;
}

1;

__END__

=head1 NAME

Test::Nginx - run nginx with a test configuration and talk HTTP to it

=head1 SYNOPSIS

    use Test::More;
    use Test::Nginx;

    my $t = Test::Nginx->new()->has(qw/http rewrite/)->plan(1);
    $t->write_file_expand('nginx.conf', <<'EOF');
    %%TEST_GLOBALS%%
    events {}
    http {
        %%TEST_GLOBALS_HTTP%%
        server {
            listen 127.0.0.1:%%PORT_8080%%;
            location / { return 200 "hello"; }
        }
    }
    EOF
    $t->run();
    like(http_get('/'), qr/hello/, 'hello');

=head1 DESCRIPTION

An implementation, written independently, of the public API of the
Test::Nginx library of nginx-tests.  Where a test file depends on what the
library does, it does what upstream's does, so that a file that passes
here passes under upstream's library too (C<scripts/test --upstream-lib>).
Helpers of this project's own are in F<t/lib/Mtls.pm>.

Exported: C<http>, C<http_get>, C<http_head>, C<port>, C<log_in>,
C<log_out>; on request C<http_start>, C<http_end>, C<http_content>, and
(also with C<:gzip>) C<http_gzip_request> and C<http_gzip_like>.
C<http_start> connects to port 8080, or 8443 with C<SSL>, unless given
C<PeerAddr> or C<socket>.

Methods: C<new>, C<testdir>, C<has>, C<has_feature>, C<has_module>,
C<has_version>, C<has_daemon>, C<plan>, C<todo_alerts>, C<write_file>,
C<write_file_expand>, C<read_file>, C<test_globals>, C<test_globals_http>
(with C<root> the test directory), C<test_globals_stream>, C<run>,
C<try_run>, C<reload> (sends SIGHUP and returns), C<stop> (nginx only; dies
without F<nginx.pid>; waits only for a master started with C<daemon off;>), C<dump_config>, C<run_daemon>, C<stop_daemons>,
C<waitforfile>, C<waitforsocket>.

C<write_file_expand> replaces C<%%TEST_GLOBALS%%>, C<%%TEST_GLOBALS_HTTP%%>,
C<%%TEST_GLOBALS_STREAM%%> (each made once per instance), C<%%TESTDIR%%>,
C<%%PORT_N%%>, C<%%PORT_N_UDP%%> and C<127.0.0.1:8NNN>.  C<port(N)> is the
same port for the whole test file, reserved by a socket of the other
protocol bound to it (C<< socket => 1 >> returns it, C<< udp => 1 >> for a
UDP port).

Once a plan is set, every instance that has an F<error.log> adds two tests
at its end: no C<[alert]> line ("no alerts", TODO after C<todo_alerts>) and
no sanitizer report in the error log or nginx's stderr ("no sanitizer
errors").  C<plan($n)> counts those of its own instance; a test file counts
those of any other.  An instance must be freed before the END blocks run
(not kept by a named sub, which should be given it as an argument): one
still alive there fails the test file, as upstream would check it too late.

=head1 ENVIRONMENT

C<TEST_NGINX_BINARY> (default F</usr/sbin/nginx>), C<TEST_NGINX_GLOBALS>,
C<TEST_NGINX_GLOBALS_HTTP>, C<TEST_NGINX_GLOBALS_STREAM> (added verbatim to
the expansions), C<TEST_NGINX_MODULES> (where dynamic modules are looked
for first), C<TEST_NGINX_VERBOSE> (traffic and commands as notes),
C<TEST_NGINX_LEAVE> (keep the test directory), C<TEST_NGINX_CATLOG> (error
log shown with C<diag> at the end).

=head1 DIFFERENCES FROM UPSTREAM

None that a test file should depend on:

=over

=item *

The default binary is F</usr/sbin/nginx> (upstream: F<../nginx/objs/nginx>).

=item *

Ports are drawn at random from 8000-8999 (upstream tries the number
itself first, then others of its block of 500).  Either way a real port
is in 8000-8999, which C<write_file_expand> maps again as a logical port:
a configuration names ports with C<%%PORT_N%%>, not with C<port(N)>.

=item *

nginx's stderr goes to F<stderr> in the test directory; C<run> shows it
with C<diag> when nginx fails to start.

=item *

C<stop> waits for a master started with C<daemon off;> 30 s (upstream:
90 s) before it sends TERM, then 10 more before KILL.  A daemonized
master is sent QUIT and not waited for, as upstream does, but the end of
the test file waits for it.

=item *

Dynamic modules (e.g. C<stream> of a distribution's nginx) count as
present only if their shared object is installed; C<%%TEST_GLOBALS%%> loads
the ones behind the features given to C<has> (upstream loads every one
that C<nginx -V> lists, from C<TEST_NGINX_MODULES> or the binary's
directory).

=item *

Nothing started is left running.  HUP, INT, PIPE and TERM, when not
handled by the test, make the test file exit normally (END stops nginx and
the daemons).  Processes started by the library lead process groups of
their own and are reported to a watchdog process, which stops those still
running once the test process is gone however it ended (e.g. SIGKILL).

=item *

C<TEST_NGINX_CATLOG> shows the log with C<diag> (upstream prints it to
stdout).

=back

=cut
