package MtlsOcsp;

# Helpers for the OCSP tests (t/ocsp_chain.t, t/ocsp_h3.t): a CA's index
# as "openssl ocsp -index" reads it, and "openssl ocsp" responders on
# loopback, each with its own log, so that a test can tell which responder
# was asked.
#
#   MtlsOcsp::write_index("$d/int.idx", "$d/alice.crt", "$d/bob.crt",
#       revoked => [ "$d/bob.crt" ]);
#   my $r = MtlsOcsp::Responder->new(dir => $d, name => 'int',
#       port => port(8084), index => 'int.idx', ca => 'int', signer => 'int');
#   $r->start();  $r->requests();  $r->stop();

use warnings;
use strict;

use POSIX ();

use Mtls;

# writes the index of a CA's certificates (paths): valid, or revoked if
# listed in "revoked"

sub write_index {
	my ($file, @args) = @_;

	my %o;
	my @certs;
	while (@args) {
		my $a = shift @args;
		if (!ref $a && $a eq 'revoked') {
			$o{revoked} = shift @args;
			next;
		}
		push @certs, $a;
	}
	my %revoked = map { $_ => 1 } @{$o{revoked} // []};

	my $index = '';
	for my $crt (@certs) {
		my $serial = Mtls::serial_hex($crt);
		$serial = "0$serial" if length($serial) % 2;
		my ($name) = $crt =~ m!([^/]+)\.crt$!;
		$index .= $revoked{$crt}
			? "R\t301231000000Z\t251201000000Z\t$serial\tunknown\t/CN=$name\n"
			: "V\t301231000000Z\t\t$serial\tunknown\t/CN=$name\n";
	}
	Mtls::write_atomic($file, $index);
}

package MtlsOcsp::Responder;

# one "openssl ocsp" responder: the certificates of CA "ca" (a name in the
# directory, as Mtls::PKI makes them), answers signed by "signer" (the CA
# itself, or a certificate it delegated), the index file "index"; its
# output, a line for each request, goes to "$name.log"

sub new {
	my ($class, %o) = @_;
	return bless { %o, pid => undef, owner => $$ }, $class;
}

sub log_file {
	my ($self) = @_;
	return "$self->{dir}/$self->{name}.log";
}

sub start {
	my ($self) = @_;

	my $d = $self->{dir};
	my $log = $self->log_file();
	my $mark = -s $log // 0;

	my $pid = fork() // die "fork: $!\n";
	if ($pid == 0) {
		open STDOUT, '>>', $log;
		open STDERR, '>&', \*STDOUT;
		{ exec 'openssl', 'ocsp', '-index', "$d/$self->{index}",
			'-port', $self->{port},
			'-rsigner', "$d/$self->{signer}.crt",
			'-rkey', "$d/$self->{signer}.key",
			'-CA', "$d/$self->{ca}.crt", '-nmin', 60, '-ignore_err'; }
		POSIX::_exit(1);
	}
	$self->{pid} = $pid;
	$self->{owner} = $$;

	# Not with a test connection: "openssl ocsp" waits for ever for the
	# request of a connection that closed without one.
	Mtls::wait_for(sub {
		my $text = -e $log ? Mtls::slurp($log) : '';
		substr($text, $mark) =~ /waiting for OCSP client connections/;
	}) or die "no OCSP responder $self->{name}\n";

	return $self;
}

sub stop {
	my ($self) = @_;
	# not from a process the test forked
	return unless $self->{pid} && $self->{owner} == $$;
	kill 'TERM', $self->{pid};
	waitpid($self->{pid}, 0);
	undef $self->{pid};
}

# how many requests it received since it was made (its log has a line
# for each)

sub requests {
	my ($self) = @_;
	my $log = -e $self->log_file() ? Mtls::slurp($self->log_file()) : '';
	my @n = $log =~ /received request/gi;
	return scalar @n;
}

sub DESTROY {
	my ($self) = @_;
	$self->stop();
}

1;
