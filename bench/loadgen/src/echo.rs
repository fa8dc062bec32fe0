//! `loadgen echo-server`: a single-threaded TCP echo on mio, the floor under every server.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(usize::MAX);

struct Peer {
    stream: TcpStream,
    unsent: Vec<u8>,
}

/// Serves until killed; writes "HOST PORT" to `ready_file` once listening.
///
/// # Errors
/// The listener cannot be bound or polled.
pub fn serve(addr: SocketAddr, ready_file: Option<&str>) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(addr)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let local = listener.local_addr()?;
    eprintln!("loadgen echo-server: serving on {local}");
    if let Some(path) = ready_file {
        std::fs::write(path, format!("{} {}\n", local.ip(), local.port()))?;
    }
    let mut peers: HashMap<Token, Peer> = HashMap::new();
    let mut next = 0usize;
    let mut events = Events::with_capacity(1024);
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        if let Err(error) = poll.poll(&mut events, None) {
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        for event in &events {
            if event.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let token = Token(next);
                            next += 1;
                            stream.set_nodelay(true)?;
                            poll.registry()
                                .register(&mut stream, token, Interest::READABLE)?;
                            peers.insert(
                                token,
                                Peer {
                                    stream,
                                    unsent: Vec::new(),
                                },
                            );
                        }
                        Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                        Err(error) => return Err(error),
                    }
                }
                continue;
            }
            let token = event.token();
            let Some(peer) = peers.get_mut(&token) else {
                continue;
            };
            if pump(peer, &mut buffer).is_err() {
                if let Some(mut peer) = peers.remove(&token) {
                    let _ = poll.registry().deregister(&mut peer.stream);
                }
                continue;
            }
            let interest = if peer.unsent.is_empty() {
                Interest::READABLE
            } else {
                Interest::READABLE | Interest::WRITABLE
            };
            poll.registry()
                .reregister(&mut peer.stream, token, interest)?;
        }
    }
}

/// Writes what is owed, then echoes everything readable; Err when the peer is gone.
fn pump(peer: &mut Peer, buffer: &mut [u8]) -> io::Result<()> {
    write_owed(peer)?;
    loop {
        match peer.stream.read(buffer) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                peer.unsent
                    .extend_from_slice(buffer.get(..n).unwrap_or_default());
                write_owed(peer)?;
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
}

fn write_owed(peer: &mut Peer) -> io::Result<()> {
    while !peer.unsent.is_empty() {
        match peer.stream.write(&peer.unsent) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                peer.unsent.drain(..n);
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}
