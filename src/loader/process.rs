//! The loader process: forked from worker 0 so that no nginx process ever
//! runs a second thread (in a process with two threads, glibc's malloc and
//! free leave their single-threaded fast path, which costs a TLS handshake,
//! with its two thousand allocations, several microseconds).
//!
//! One Unix stream socket joins worker 0 and the loader. The loader writes
//! lines on it, which worker 0's timer reads and logs; worker 0 never
//! writes, so the loader sees its end become readable only at end of file:
//! when worker 0 shuts it down to stop the loader, or exits, even killed.
//! Lines are `P pid` (first, once the process is ready), `N text` (a
//! notice), `E text` (an error) and `K text` (kept by worker 0 for the
//! next loader, should this one die).
//!
//! The loader is a grandchild: worker 0 forks a child that forks the loader
//! and exits at once, so nginx's SIGCHLD handler, which reaps and logs any
//! child of a worker, never hears of it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// A line the loader process sends to worker 0.
#[derive(Debug, PartialEq, Eq)]
pub enum Message {
    /// For the error log, at `notice` level.
    Notice(String),
    /// For the error log, at `error` level.
    Error(String),
    /// To keep for the next loader process.
    Keep(String),
}

/// Signals that nginx sends to its processes or their process group: the
/// loader ignores them, so that neither `kill -TERM -PGID` nor Ctrl-C on an
/// nginx in the foreground ends it in the middle of writing a table. Its
/// life is the socket's.
const IGNORED: [libc::c_int; 9] = [
    libc::SIGHUP,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGALRM,
    libc::SIGIO,
];

/// How long [`spawn`] waits for the new process to say it is ready.
const READY_WAIT: Duration = Duration::from_secs(5);

/// Worker 0's end: the socket, and what came through it.
pub struct Child {
    fd: OwnedFd,
    /// The loader's pid, from its first line.
    pid: libc::pid_t,
    /// Bytes after the last complete line.
    partial: Vec<u8>,
    messages: Vec<Message>,
}

/// How [`Child::stop`] ended the loader process.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    /// It closed its end of the socket: it has exited.
    Exited,
    /// It did not within the time allowed, and was killed.
    Killed,
}

impl Child {
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// Reads what the loader wrote, without blocking. False once the
    /// loader has closed its end: it has exited.
    pub fn receive(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        let open = loop {
            // SAFETY: `buf` is writable for its length; `fd` is open.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            match n {
                0 => break false,
                n if n > 0 => self.partial.extend_from_slice(&buf[..n as usize]),
                _ => match io::Error::last_os_error().kind() {
                    io::ErrorKind::Interrupted => {}
                    io::ErrorKind::WouldBlock => break true,
                    _ => break false,
                },
            }
        };
        self.parse();
        open
    }

    /// The messages received so far.
    pub fn take_messages(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.messages)
    }

    fn parse(&mut self) {
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        let lines: Vec<u8> = self.partial.drain(..=end).collect();
        for line in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let text = String::from_utf8_lossy(line.get(2..).unwrap_or_default()).into_owned();
            match line[0] {
                b'P' => self.pid = text.parse().unwrap_or(0),
                b'N' => self.messages.push(Message::Notice(text)),
                b'K' => self.messages.push(Message::Keep(text)),
                _ => self.messages.push(Message::Error(text)),
            }
        }
    }

    /// Waits until a line arrives or the loader exits, at most `limit`.
    fn wait(&mut self, limit: Duration) -> bool {
        let mut fd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut fd, 1, millis(limit)) };
        ready != 0
    }

    /// Asks the loader to stop and waits until it has, at most `limit`: a
    /// load in progress is finished first (a 1,000,000-entry CRL takes a
    /// few seconds), and not published. Kills the loader after that.
    /// Messages received meanwhile stay for [`Child::take_messages`].
    pub fn stop(&mut self, limit: Duration) -> Stopped {
        // SAFETY: `fd` is open; shutting down our side only.
        unsafe { libc::shutdown(self.fd.as_raw_fd(), libc::SHUT_WR) };
        let deadline = Instant::now() + limit;
        loop {
            if !self.receive() {
                return Stopped::Exited;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.wait(left);
        }
        if self.pid > 0 {
            // SAFETY: plain kill(2); the process still holds its end of
            // the socket, so the pid is still the loader's.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            // The kernel closes its socket as it dies.
            let deadline = Instant::now() + Duration::from_secs(1);
            while self.receive() && Instant::now() < deadline {
                self.wait(deadline.saturating_duration_since(Instant::now()));
            }
        }
        Stopped::Killed
    }
}

/// The loader's end of the socket.
pub struct Link {
    fd: OwnedFd,
}

impl Link {
    /// Leaves a line for worker 0's error log. A worker that has gone
    /// misses it.
    pub fn say(&self, error: bool, text: &str) {
        self.send(if error { b'E' } else { b'N' }, text);
    }

    /// Leaves a line for worker 0 to give the next loader process.
    pub fn keep(&self, text: &str) {
        self.send(b'K', text);
    }

    fn send(&self, kind: u8, text: &str) {
        let line = encode(kind, text);
        let mut sent = 0;
        while sent < line.len() {
            // SAFETY: the bytes from `sent` on are readable; `fd` is open.
            // MSG_NOSIGNAL: a worker gone is an error here, not SIGPIPE.
            let n = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    line[sent..].as_ptr().cast(),
                    line.len() - sent,
                    libc::MSG_NOSIGNAL,
                )
            };
            if n > 0 {
                sent += n as usize;
            } else if n == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return;
            }
        }
    }

    /// Whether worker 0 still holds its end open and wants the loader.
    pub fn open(&self) -> bool {
        self.sleep(Duration::ZERO)
    }

    /// Sleeps for `d`, or until worker 0 shuts down or closes its end:
    /// then returns false at once.
    pub fn sleep(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        loop {
            let mut fd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let left = deadline.saturating_duration_since(Instant::now());
            // SAFETY: one valid pollfd.
            let ready = unsafe { libc::poll(&mut fd, 1, millis(left)) };
            match ready {
                // Worker 0 never writes: readable is end of file.
                r if r > 0 => return false,
                0 if left.is_zero() || Instant::now() >= deadline => return true,
                0 => {}
                _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
                _ => return false,
            }
        }
    }
}

/// One line: the kind, a space, the text on one line.
fn encode(kind: u8, text: &str) -> Vec<u8> {
    let mut line = Vec::with_capacity(text.len() + 3);
    line.push(kind);
    line.push(b' ');
    line.extend(text.bytes().map(|b| if b == b'\n' { b' ' } else { b }));
    line.push(b'\n');
    line
}

/// A poll(2) timeout, rounded up so that a short sleep still sleeps.
fn millis(d: Duration) -> libc::c_int {
    let ms = d.as_micros().div_ceil(1000);
    libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
}

/// Forks the loader process, which runs `body` with its end of the socket
/// and exits when `body` returns (or panics), without running the exit
/// handlers of the process it was forked from.
///
/// The caller must be single-threaded: the new process is a copy of it in
/// which only the forking thread goes on. Returns once the process has
/// closed the descriptors it inherited, so that no connection of the
/// caller stays open in it.
pub fn spawn(body: impl FnOnce(Link)) -> io::Result<Child> {
    let mut fds = [-1 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just made, and are owned only here.
    let (ours, theirs) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };

    // nginx's SIGCHLD handler would reap the intermediate child first and
    // log it as an unknown process: the default action while it lives.
    // SAFETY: zeroed sigactions are valid; SIG_DFL needs no handler.
    let (mut old, mut default): (libc::sigaction, libc::sigaction) =
        unsafe { (core::mem::zeroed(), core::mem::zeroed()) };
    default.sa_sigaction = libc::SIG_DFL;
    // SAFETY: both point to valid sigactions.
    if unsafe { libc::sigaction(libc::SIGCHLD, &default, &mut old) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the caller is single-threaded; the child only forks again
    // and exits.
    let child = unsafe { libc::fork() };
    if child == 0 {
        // SAFETY: in the intermediate child: fork, then _exit(2) without
        // running anything of the parent's.
        unsafe {
            let loader = libc::fork();
            if loader == 0 {
                drop(ours);
                become_loader(theirs, body);
            }
            libc::_exit(i32::from(loader < 0));
        }
    }
    let forked = if child < 0 {
        Err(io::Error::last_os_error())
    } else {
        reap(child)
    };
    // SAFETY: `old` is what sigaction filled in above.
    unsafe { libc::sigaction(libc::SIGCHLD, &old, core::ptr::null_mut()) };
    drop(theirs);
    forked?;

    let mut child = Child {
        fd: ours,
        pid: 0,
        partial: Vec::new(),
        messages: Vec::new(),
    };
    let deadline = Instant::now() + READY_WAIT;
    while child.pid == 0 {
        if !child.receive() {
            return Err(io::Error::other("the new process exited at once"));
        }
        if child.pid != 0 {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the new process did not start",
            ));
        }
        child.wait(left);
    }
    Ok(child)
}

/// Waits for the intermediate child, which exits as soon as it has forked.
fn reap(child: libc::pid_t) -> io::Result<()> {
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child, with a valid status pointer.
        if unsafe { libc::waitpid(child, &mut status, 0) } == child {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else {
        Err(io::Error::other("cannot fork the loader process"))
    }
}

/// The loader process, from its first instruction to its exit.
///
/// # Safety
/// Only in a process just forked from a single-threaded one; never returns.
unsafe fn become_loader(fd: OwnedFd, body: impl FnOnce(Link)) -> ! {
    // SAFETY: zeroed sigaction and sigset_t are valid values, filled in
    // before use; SIG_IGN needs no handler.
    unsafe {
        let mut ignore: libc::sigaction = core::mem::zeroed();
        ignore.sa_sigaction = libc::SIG_IGN;
        for signal in IGNORED {
            libc::sigaction(signal, &ignore, core::ptr::null_mut());
        }
        let mut none: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, core::ptr::null_mut());
    }
    close_inherited(fd.as_raw_fd());

    let link = Link { fd };
    link.send(b'P', &std::process::id().to_string());
    let done = catch_unwind(AssertUnwindSafe(|| body(link)));
    // SAFETY: _exit(2), not exit(3): the atexit handlers and destructors
    // in this process are the worker's.
    unsafe { libc::_exit(i32::from(done.is_err())) }
}

/// Closes every descriptor but the standard ones and `keep`: connections,
/// listening sockets, the worker's event and channel descriptors, logs.
fn close_inherited(keep: RawFd) {
    let fds: Vec<RawFd> = match std::fs::read_dir("/proc/self/fd") {
        Ok(dir) => dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => {
            // SAFETY: getdtablesize only reads the process's limit.
            let max = unsafe { libc::getdtablesize() };
            (0..max).collect()
        }
    };
    for fd in fds {
        if fd > 2 && fd != keep {
            // SAFETY: this process is about to forget every descriptor it
            // inherited; nothing in it refers to them any more (the one of
            // the directory read above included, already closed: EBADF).
            unsafe { libc::close(fd) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{encode, spawn, Message, Stopped};
    use std::time::{Duration, Instant};

    #[test]
    fn lines_on_one_line() {
        assert_eq!(encode(b'E', "a\nb"), b"E a b\n");
        assert_eq!(encode(b'N', ""), b"N \n");
    }

    /// The loader process reports, sees worker 0 stop it, and exits;
    /// one that does not stop is killed.
    #[test]
    fn lifecycle() {
        let mut child = spawn(|link| {
            link.say(false, "hello");
            link.say(true, "first\nsecond");
            link.keep("0 1 2");
            while link.sleep(Duration::from_millis(10)) {}
            link.say(false, "bye");
        })
        .unwrap();
        assert!(child.pid() > 0);
        assert_ne!(child.pid() as u32, std::process::id());
        assert_eq!(child.stop(Duration::from_secs(5)), Stopped::Exited);
        assert_eq!(
            child.take_messages(),
            [
                Message::Notice("hello".into()),
                Message::Error("first second".into()),
                Message::Keep("0 1 2".into()),
                Message::Notice("bye".into()),
            ]
        );

        let mut stuck = spawn(|_link| loop {
            std::thread::sleep(Duration::from_secs(1));
        })
        .unwrap();
        let pid = stuck.pid();
        let start = Instant::now();
        assert_eq!(stuck.stop(Duration::from_millis(200)), Stopped::Killed);
        assert!(start.elapsed() < Duration::from_secs(2));
        // Its socket is closed as it dies, a moment before it is a zombie.
        let gone = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
                let state = s.rsplit(')').next().unwrap_or("").trim_start();
                state.starts_with('Z') || state.starts_with('X')
            })
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        while !gone() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(gone(), "killed");
    }

    /// A loader that dies is seen as end of file. It dies a moment after
    /// it started: one that dies before `spawn` has read its first line is
    /// reported by `spawn` as exited at once.
    #[test]
    fn death_seen() {
        let mut child = spawn(|_link| {
            std::thread::sleep(Duration::from_millis(300));
            panic!("on purpose")
        })
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while child.receive() && Instant::now() < deadline {
            child.wait(Duration::from_millis(50));
        }
        assert!(!child.receive());
    }
}
