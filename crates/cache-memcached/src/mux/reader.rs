//! The reader task of a multiplexed connection: reads the answers in the order the
//! requests were written and checks that each carries its request's opaque token, so
//! that an answer out of step fails the connection instead of reaching the wrong caller.
//!
//! The framing is the crate's own (`MetaResponse::parse_header`, `parse_meta_result`);
//! only the length of a `VA` data block, which `MetaResponse` keeps private, is read from
//! the header line here.

use std::io;

use memcache::exp::{parse_meta_result, Error, MetaResponse, ReturnCode};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, BufReader, ReadHalf},
    sync::mpsc,
};

use super::connection::{Answer, Answers, Exchange, Expect, Failure, Shared};
use crate::transport::Stream;

/// Longest answer header accepted: a header holds at most a 250-byte key and a few flags.
const MAX_LINE: u64 = 8 * 1024;

type Reader = BufReader<ReadHalf<Stream>>;

/// Reads answers for the requests the writer registers, until the connection fails or
/// is dropped.
pub(crate) async fn run(
    mut socket: Reader,
    mut expected: mpsc::UnboundedReceiver<Exchange>,
    shared: std::sync::Arc<Shared>,
) {
    let mut line = Vec::with_capacity(256);
    loop {
        let exchange = match next_exchange(&mut socket, &mut expected).await {
            Ok(Some(exchange)) => exchange,
            Ok(None) => return,
            Err(failure) => return shared.fail(failure),
        };
        match read_exchange(&mut socket, &mut line, exchange.expect).await {
            Ok((answers, in_step)) => {
                // A caller that gave up has dropped its receiver: the answer is dropped.
                let _ = exchange.reply.send(answers);
                if let Err(failure) = in_step {
                    return shared.fail(failure);
                }
            }
            // The reason is set before the request is dropped: its caller reads it.
            Err(failure) => {
                shared.fail(failure);
                drop(exchange);
                return;
            }
        }
    }
}

/// The next request to read answers for. The writer registers each request before it
/// writes it, so the queue holds a request before its first answer can arrive: while it
/// is empty only the socket is watched, and a registration alone never wakes this task
/// (one wake less per call at low concurrency). A server that closes an idle connection
/// fails it at once, so the next call dials again instead of failing on it; bytes that
/// arrive with no request registered mean the stream is out of step.
async fn next_exchange(
    socket: &mut Reader,
    expected: &mut mpsc::UnboundedReceiver<Exchange>,
) -> Result<Option<Exchange>, Failure> {
    match expected.try_recv() {
        Ok(exchange) => return Ok(Some(exchange)),
        Err(mpsc::error::TryRecvError::Disconnected) => return Ok(None),
        Err(mpsc::error::TryRecvError::Empty) => {}
    }
    let closed = socket.fill_buf().await.map(<[u8]>::is_empty);
    match expected.try_recv() {
        Ok(exchange) => return Ok(Some(exchange)),
        Err(mpsc::error::TryRecvError::Disconnected) => return Ok(None),
        Err(mpsc::error::TryRecvError::Empty) => {}
    }
    match closed {
        Ok(true) => Err(Failure::Io(
            io::ErrorKind::UnexpectedEof,
            "memcached closed the connection".to_owned(),
        )),
        Ok(false) => Err(Failure::Protocol(
            "memcached sent an answer to no request".to_owned(),
        )),
        Err(error) => Err(Failure::io(&error)),
    }
}

/// Reads the answers of one request. The second part of the result is `Err` when the
/// answers were read but the connection must not be used further (the server refused a
/// command as malformed, so what it read after may not be what was sent).
async fn read_exchange(
    socket: &mut Reader,
    line: &mut Vec<u8>,
    expect: Expect,
) -> Result<(Answers, Result<(), Failure>), Failure> {
    let (first, count) = match expect {
        Expect::Noop => {
            let answer = read_answer(socket, line).await?;
            return match answer {
                Ok(result) if result.rc == ReturnCode::Mn => Ok((Answers::One(Ok(result)), Ok(()))),
                other => Err(Failure::Protocol(format!(
                    "memcached answered a no-op with {other:?}"
                ))),
            };
        }
        Expect::Commands { first, count } => (first, count),
    };
    // A request of one command (every call but a batch) needs no vector.
    let mut answers = Vec::with_capacity(if count == 1 { 0 } else { count });
    let mut single = None;
    let mut in_step = Ok(());
    for position in 0..count {
        let expected = first.wrapping_add(u32::try_from(position).unwrap_or(u32::MAX));
        let answer = read_answer(socket, line).await?;
        match &answer {
            Ok(result) => check_opaque(result.opaque.as_deref(), expected)?,
            Err(Error::Rejected(message)) => {
                in_step = Err(Failure::Protocol(format!(
                    "memcached refused a command ({message}); the connection is dropped"
                )));
            }
            // `SERVER_ERROR` (a value too large, out of memory): the server read the
            // whole command and stays in step.
            Err(_) => {}
        }
        if count == 1 {
            single = Some(answer);
        } else {
            answers.push(answer);
        }
    }
    let answers = match single {
        Some(answer) => Answers::One(answer),
        None => Answers::Many(answers),
    };
    Ok((answers, in_step))
}

/// An answer whose opaque token is not its request's means the answers are out of step.
fn check_opaque(echoed: Option<&[u8]>, expected: u32) -> Result<(), Failure> {
    let matches = echoed
        .and_then(|token| std::str::from_utf8(token).ok())
        .and_then(|token| token.parse::<u32>().ok())
        == Some(expected);
    if matches {
        return Ok(());
    }
    Err(Failure::Protocol(format!(
        "memcached answered with opaque {:?} where O{expected} was due: the connection is \
         out of step and is dropped",
        echoed.map(String::from_utf8_lossy)
    )))
}

/// Reads one answer: its header line and, for `VA`, its data block. The server's refusal
/// of a command (`SERVER_ERROR`, `CLIENT_ERROR`) is that command's answer; anything that
/// cannot be framed fails the connection.
async fn read_answer(socket: &mut Reader, line: &mut Vec<u8>) -> Result<Answer, Failure> {
    line.clear();
    let read = (&mut *socket)
        .take(MAX_LINE)
        .read_until(b'\n', line)
        .await
        .map_err(|error| Failure::io(&error))?;
    if !line.ends_with(b"\n") {
        return Err(if read as u64 == MAX_LINE {
            Failure::Protocol(format!("memcached sent a header over {MAX_LINE} bytes"))
        } else {
            Failure::Io(
                io::ErrorKind::UnexpectedEof,
                "memcached closed the connection mid-answer".to_owned(),
            )
        });
    }
    let header = line.strip_suffix(b"\n").unwrap_or(line);
    let header = header.strip_suffix(b"\r").unwrap_or(header);
    let response = match MetaResponse::parse_header(header) {
        Ok(response) => response,
        Err(error @ (Error::Server(_) | Error::Rejected(_))) => return Ok(Err(error)),
        Err(error) => return Err(Failure::Protocol(error.to_string())),
    };
    let length = match response.rc() {
        ReturnCode::Va => Some(data_length(header)?),
        _ => None,
    };
    let mut result = parse_meta_result(response).map_err(|e| Failure::Protocol(e.to_string()))?;
    if let Some(length) = length {
        // The value in a buffer of its exact size, which `Bytes` then takes over without
        // an allocation of its own; its `\r\n` apart.
        let mut value = vec![0; length];
        let mut end = [0; 2];
        socket
            .read_exact(&mut value)
            .await
            .map_err(|error| Failure::io(&error))?;
        socket
            .read_exact(&mut end)
            .await
            .map_err(|error| Failure::io(&error))?;
        if end != *b"\r\n" {
            return Err(Failure::Protocol(
                "a data block without its \\r\\n".to_owned(),
            ));
        }
        result.value = Some(value);
    }
    Ok(Ok(result))
}

/// The data length of a `VA <length> <flags>*` header, which `parse_header` has already
/// checked (a number, at most 1 GiB) but keeps to itself.
fn data_length(header: &[u8]) -> Result<usize, Failure> {
    header
        .split(|&byte| byte == b' ')
        .filter(|token| !token.is_empty())
        .nth(1)
        .and_then(|token| std::str::from_utf8(token).ok())
        .and_then(|token| token.parse().ok())
        .ok_or_else(|| Failure::Protocol("a VA answer without its length".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opaque_tokens_must_match() {
        assert!(check_opaque(Some(b"7"), 7).is_ok());
        assert!(check_opaque(Some(b"8"), 7).is_err());
        assert!(check_opaque(None, 7).is_err());
        assert!(check_opaque(Some(b"x"), 7).is_err());
    }

    #[test]
    fn the_data_length_comes_from_the_header() {
        assert_eq!(data_length(b"VA 5 f0 O3").unwrap(), 5);
        assert_eq!(data_length(b"VA  12").unwrap(), 12);
        assert!(data_length(b"VA").is_err());
    }
}
