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
    io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, BufReader, ReadHalf},
    sync::mpsc,
};

use super::connection::{Answer, Answers, Exchange, Expect, Failure, Reply, Shared};
use crate::transport::Stream;

/// Longest answer header accepted: a header holds at most a 250-byte key and a few flags.
const MAX_LINE: u64 = 8 * 1024;

type Reader = BufReader<ReadHalf<Stream>>;

/// The answers of one request, and `Err` when they were read but the connection must not
/// be used further.
type Read = (Answers, Result<(), Failure>);

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
        // Usually every answer is in the buffer already: read from it without a future.
        let read = match buffered_exchange(socket.buffer(), exchange.expect) {
            Ok(Some((read, used))) => {
                socket.consume(used);
                Ok(read)
            }
            Ok(None) => read_exchange(&mut socket, &mut line, exchange.expect).await,
            Err(failure) => Err(failure),
        };
        match read {
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
        Ok(false) => {
            let buffered = socket.buffer();
            let line = buffered
                .iter()
                .position(|&byte| byte == b'\n')
                .map_or(buffered, |end| &buffered[..=end]);
            Err(match crate::error::connection_refusal(line) {
                Some(reason) => refused_connection(&reason),
                None => Failure::Protocol("memcached sent an answer to no request".to_owned()),
            })
        }
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
) -> Result<Read, Failure> {
    let (first, count) = match expect {
        Expect::Noop => {
            let answer = read_answer(socket, line).await?;
            return noop_answer(answer).map(|answers| (answers, Ok(())));
        }
        Expect::Commands { first, count } => (first, count),
    };
    let mut gathered = Gathered::new(first, count);
    for _ in 0..count {
        let answer = read_answer(socket, line).await?;
        gathered.push(answer)?;
    }
    Ok(gathered.finish())
}

/// The answers of one request when all of them are in `buffer`, with the bytes they
/// take; `None` when more must be read first (nothing is then taken from the buffer).
fn buffered_exchange(buffer: &[u8], expect: Expect) -> Result<Option<(Read, usize)>, Failure> {
    let (first, count) = match expect {
        Expect::Noop => {
            let Some((answer, used)) = buffered_answer(buffer)? else {
                return Ok(None);
            };
            return noop_answer(answer).map(|answers| Some(((answers, Ok(())), used)));
        }
        Expect::Commands { first, count } => (first, count),
    };
    let mut gathered = Gathered::new(first, count);
    let mut used = 0;
    for _ in 0..count {
        let Some((answer, size)) = buffered_answer(&buffer[used..])? else {
            return Ok(None);
        };
        used += size;
        gathered.push(answer)?;
    }
    Ok(Some((gathered.finish(), used)))
}

/// The answer to a no-op must be `MN`.
fn noop_answer(answer: Answer) -> Result<Answers, Failure> {
    match answer {
        Ok(result) if result.rc == ReturnCode::Mn => Ok(Answers::One(Ok(result))),
        other => Err(Failure::Protocol(format!(
            "memcached answered a no-op with {other:?}"
        ))),
    }
}

/// The answers of a request of meta commands, checked one by one as they are read.
struct Gathered {
    first: u32,
    count: usize,
    answers: Vec<Answer>,
    single: Option<Answer>,
    in_step: Result<(), Failure>,
}

impl Gathered {
    fn new(first: u32, count: usize) -> Self {
        Self {
            first,
            count,
            // A request of one command (every call but a batch) needs no vector.
            answers: Vec::with_capacity(if count == 1 { 0 } else { count }),
            single: None,
            in_step: Ok(()),
        }
    }

    /// Takes the next answer: one whose opaque token is not the one due fails the
    /// connection at once.
    fn push(&mut self, answer: Answer) -> Result<(), Failure> {
        let position = self.answers.len() + usize::from(self.single.is_some());
        let expected = self
            .first
            .wrapping_add(u32::try_from(position).unwrap_or(u32::MAX));
        match &answer {
            Ok(result) => check_opaque(result.opaque, expected)?,
            Err(Error::Rejected(message)) => {
                self.in_step = Err(Failure::Protocol(format!(
                    "memcached refused a command ({message}); the connection is dropped"
                )));
            }
            // `SERVER_ERROR` (a value too large, out of memory): the server read the
            // whole command and stays in step.
            Err(_) => {}
        }
        if self.count == 1 {
            self.single = Some(answer);
        } else {
            self.answers.push(answer);
        }
        Ok(())
    }

    /// The answers, and whether the connection may still be used.
    fn finish(self) -> Read {
        let answers = match self.single {
            Some(answer) => Answers::One(answer),
            None => Answers::Many(self.answers),
        };
        (answers, self.in_step)
    }
}

/// An answer whose opaque token is not its request's means the answers are out of step.
fn check_opaque(echoed: Option<u32>, expected: u32) -> Result<(), Failure> {
    if echoed == Some(expected) {
        return Ok(());
    }
    let echoed = echoed.map_or_else(
        || "no opaque token that is a number".to_owned(),
        |token| format!("opaque O{token}"),
    );
    Err(Failure::Protocol(format!(
        "memcached answered with {echoed} where O{expected} was due: the connection is out \
         of step and is dropped"
    )))
}

/// Reads one answer: its header line and, for `VA`, its data block. The server's refusal
/// of a command (`SERVER_ERROR`, `CLIENT_ERROR`) is that command's answer; anything that
/// cannot be framed fails the connection.
async fn read_answer<R>(socket: &mut R, line: &mut Vec<u8>) -> Result<Answer, Failure>
where
    R: AsyncBufRead + Unpin,
{
    line.clear();
    let read = (&mut *socket)
        .take(MAX_LINE)
        .read_until(b'\n', line)
        .await
        .map_err(|error| Failure::io(&error))?;
    if !line.ends_with(b"\n") {
        return Err(if read as u64 == MAX_LINE {
            header_too_long()
        } else {
            Failure::Io(
                io::ErrorKind::UnexpectedEof,
                "memcached closed the connection mid-answer".to_owned(),
            )
        });
    }
    let (mut result, length) = match parse_line(line)? {
        Header::Refused(error) => return Ok(Err(error)),
        Header::Reply(result, length) => (result, length),
    };
    if let Some(length) = length {
        let value = read_value(socket, length).await?;
        let mut end = [0; 2];
        socket
            .read_exact(&mut end)
            .await
            .map_err(|error| Failure::io(&error))?;
        check_terminator(&end)?;
        result.value = Some(value);
    }
    Ok(Ok(result))
}

/// The most memory a data block is given before its bytes arrive. A header announces up
/// to 1 GiB: a longer block grows as its bytes come in, so that a server (or something
/// posing as one) that announces a gigabyte and sends little costs little.
const UP_FRONT: usize = 1 << 20;

/// Reads a data block of `length` bytes (its `\r\n` apart).
async fn read_value<R>(socket: &mut R, length: usize) -> Result<Vec<u8>, Failure>
where
    R: AsyncBufRead + Unpin,
{
    if length <= UP_FRONT {
        // A buffer of the value's exact size, which `Bytes` then takes over without an
        // allocation of its own.
        let mut value = vec![0; length];
        socket
            .read_exact(&mut value)
            .await
            .map_err(|error| Failure::io(&error))?;
        return Ok(value);
    }
    let mut value = Vec::with_capacity(UP_FRONT);
    let wanted = u64::try_from(length).unwrap_or(u64::MAX);
    let read = (&mut *socket)
        .take(wanted)
        .read_to_end(&mut value)
        .await
        .map_err(|error| Failure::io(&error))?;
    if read < length {
        return Err(Failure::Io(
            io::ErrorKind::UnexpectedEof,
            "memcached closed the connection mid-value".to_owned(),
        ));
    }
    Ok(value)
}

/// What an answer's header line says.
enum Header {
    /// The server's refusal of the command (`SERVER_ERROR`, `CLIENT_ERROR`): that
    /// command's answer.
    Refused(Error),
    /// A reply, and the length of the data block that follows it (`VA`).
    Reply(Reply, Option<usize>),
}

/// Parses a header line (its `\r\n` included or not).
fn parse_line(line: &[u8]) -> Result<Header, Failure> {
    if let Some(reason) = crate::error::connection_refusal(line) {
        return Err(refused_connection(&reason));
    }
    let header = line.strip_suffix(b"\n").unwrap_or(line);
    let header = header.strip_suffix(b"\r").unwrap_or(header);
    let response = match MetaResponse::parse_header(header) {
        Ok(response) => response,
        Err(error @ (Error::Server(_) | Error::Rejected(_))) => return Ok(Header::Refused(error)),
        // Not a meta answer at all (Redis's `-ERR`, an HTTP status line): something
        // else than memcached answers on the port, which the parser's word alone
        // ("unknown return code") does not say.
        Err(error) => {
            return Err(Failure::Protocol(format!(
                "an answer outside memcached's protocol ({error}): is another server \
                 listening on this port?"
            )))
        }
    };
    let length = match response.rc() {
        ReturnCode::Va => Some(data_length(header)?),
        _ => None,
    };
    let result = parse_meta_result(response).map_err(|e| Failure::Protocol(e.to_string()))?;
    Ok(Header::Reply(Reply::from(result), length))
}

/// An answer that is wholly in `buffer`, and the bytes it takes; `None` when its header
/// or its data block is not all there yet.
fn buffered_answer(buffer: &[u8]) -> Result<Option<(Answer, usize)>, Failure> {
    // The same bound on a header as when it is read from the socket.
    let limit = buffer.len().min(MAX_LINE as usize);
    let Some(newline) = buffer[..limit].iter().position(|&byte| byte == b'\n') else {
        return if limit == MAX_LINE as usize {
            Err(header_too_long())
        } else {
            Ok(None)
        };
    };
    let data = newline + 1;
    let (mut result, length) = match parse_line(&buffer[..data])? {
        Header::Refused(error) => return Ok(Some((Err(error), data))),
        Header::Reply(result, None) => return Ok(Some((Ok(result), data))),
        Header::Reply(result, Some(length)) => (result, length),
    };
    let Some(end) = data.checked_add(length).and_then(|end| end.checked_add(2)) else {
        return Ok(None);
    };
    let Some(block) = buffer.get(data..end) else {
        return Ok(None);
    };
    let (value, terminator) = block.split_at(length);
    check_terminator(terminator)?;
    result.value = Some(value.to_vec());
    Ok(Some((Ok(result), end)))
}

/// The connection's failure when memcached refused it (see
/// [`connection_refusal`](crate::error::connection_refusal)).
fn refused_connection(reason: &str) -> Failure {
    Failure::Io(
        io::ErrorKind::ConnectionRefused,
        format!("memcached refused the connection: {reason}"),
    )
}

/// A header line longer than any the server sends means the stream is not memcached's.
fn header_too_long() -> Failure {
    Failure::Protocol(format!("memcached sent a header over {MAX_LINE} bytes"))
}

/// A data block must end with `\r\n`: anything else means its length was not the one
/// announced, and the stream is out of step.
fn check_terminator(end: &[u8]) -> Result<(), Failure> {
    if end == b"\r\n" {
        Ok(())
    } else {
        Err(Failure::Protocol(
            "a data block without its \\r\\n".to_owned(),
        ))
    }
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
        assert!(check_opaque(Some(7), 7).is_ok());
        assert!(check_opaque(Some(8), 7).is_err());
        assert!(check_opaque(None, 7).is_err());
        let Err(Failure::Protocol(message)) = check_opaque(Some(8), 7) else {
            panic!("a wrong token must fail the connection as out of step");
        };
        assert!(message.contains("opaque O8 where O7 was due"), "{message}");
    }

    /// An answer in another protocol (Redis's, HTTP's) says another server may be on
    /// the port, in one line.
    #[test]
    fn an_answer_in_another_protocol_is_said_so() {
        for line in [
            &b"-ERR unknown command 'mg'\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\n",
        ] {
            let Err(Failure::Protocol(message)) = parse_line(line) else {
                panic!("{line:?} is no memcached answer");
            };
            assert!(
                message.contains("outside memcached's protocol")
                    && message.contains("another server")
                    && !message.contains('\n'),
                "{message}"
            );
        }
    }

    fn values(answers: Answers) -> Vec<Option<Vec<u8>>> {
        answers
            .into_vec()
            .into_iter()
            .map(|answer| answer.unwrap().value)
            .collect()
    }

    #[test]
    fn answers_wholly_buffered_are_read_from_the_buffer() {
        let one = Expect::Commands { first: 7, count: 1 };
        let wire = b"VA 2 O7\r\nhi\r\nEN O8\r\n";
        let ((answers, in_step), used) = buffered_exchange(wire, one).unwrap().unwrap();
        assert!(in_step.is_ok());
        assert_eq!(used, 13);
        assert_eq!(values(answers), [Some(b"hi".to_vec())]);

        let two = Expect::Commands { first: 7, count: 2 };
        let ((answers, _), used) = buffered_exchange(wire, two).unwrap().unwrap();
        assert_eq!(used, wire.len());
        assert_eq!(values(answers), [Some(b"hi".to_vec()), None]);

        let noop = buffered_exchange(b"MN\r\n", Expect::Noop).unwrap().unwrap();
        assert_eq!(noop.1, 4);
    }

    #[test]
    fn a_partial_answer_is_left_for_the_socket() {
        let one = Expect::Commands { first: 7, count: 1 };
        for partial in [
            &b""[..],
            b"VA 2 O7",
            b"VA 2 O7\r\n",
            b"VA 2 O7\r\nhi",
            b"VA 2 O7\r\nhi\r",
        ] {
            assert!(
                buffered_exchange(partial, one).unwrap().is_none(),
                "{}",
                String::from_utf8_lossy(partial)
            );
        }
        let three = Expect::Commands { first: 7, count: 3 };
        assert!(buffered_exchange(b"HD O7\r\nHD O8\r\n", three)
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_buffered_answer_out_of_step_fails_the_connection() {
        let one = Expect::Commands { first: 7, count: 1 };
        assert!(buffered_exchange(b"HD O8\r\n", one).is_err());
        // A token that is not a number, or none, matches no request.
        assert!(buffered_exchange(b"HD Ox7\r\n", one).is_err());
        assert!(buffered_exchange(b"HD O07x\r\n", one).is_err());
        assert!(buffered_exchange(b"HD\r\n", one).is_err());
        assert!(buffered_exchange(b"VA 2 O7\r\nhiX\r\n", one).is_err());
        assert!(buffered_exchange(b"HD O7\r\n", Expect::Noop).is_err());
        // A refusal is the command's answer; a malformed command's leaves the
        // connection unusable.
        let ((answers, in_step), _) =
            buffered_exchange(b"CLIENT_ERROR bad command line format\r\n", one)
                .unwrap()
                .unwrap();
        assert!(in_step.is_err());
        assert!(answers.into_first().unwrap().is_err());
        let ((_, in_step), _) = buffered_exchange(b"SERVER_ERROR out of memory\r\n", one)
            .unwrap()
            .unwrap();
        assert!(in_step.is_ok());
    }

    #[test]
    fn a_header_over_the_limit_fails_from_the_buffer_as_from_the_socket() {
        let one = Expect::Commands { first: 7, count: 1 };
        let limit = usize::try_from(MAX_LINE).unwrap();
        // A header of exactly the limit, its `\r\n` included, is read.
        let mut fits = b"HD O7".to_vec();
        fits.resize(limit - 2, b' ');
        fits.extend_from_slice(b"\r\n");
        let (_, used) = buffered_exchange(&fits, one).unwrap().unwrap();
        assert_eq!(used, limit);
        // One byte more is refused, whether its newline has arrived or not.
        let mut over = b"HD O7".to_vec();
        over.resize(limit - 1, b' ');
        over.extend_from_slice(b"\r\n");
        let failure = buffered_exchange(&over, one).err().unwrap();
        assert!(
            format!("{failure:?}").contains("header over"),
            "{failure:?}"
        );
        let failure = buffered_exchange(&over[..limit], one).err().unwrap();
        assert!(
            format!("{failure:?}").contains("header over"),
            "{failure:?}"
        );
        // Short of the limit, a header still arriving is left for the socket.
        assert!(buffered_exchange(&over[..limit - 1], one)
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn a_header_over_the_limit_fails_from_the_socket() {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let mut over = b"HD O7".to_vec();
        over.resize(usize::try_from(MAX_LINE).unwrap() + 10, b' ');
        over.extend_from_slice(b"\r\n");
        tokio::io::AsyncWriteExt::write_all(&mut server, &over)
            .await
            .unwrap();
        let mut socket = BufReader::new(client);
        let mut line = Vec::new();
        let failure = read_answer(&mut socket, &mut line).await.err().unwrap();
        assert!(
            format!("{failure:?}").contains("header over"),
            "{failure:?}"
        );
    }

    #[tokio::test]
    async fn values_longer_than_the_up_front_memory_are_read_whole() {
        for length in [0, 1, UP_FRONT, UP_FRONT + 1, 3 * UP_FRONT + 7] {
            let value: Vec<u8> = (0..length).map(|i| (i % 251) as u8).collect();
            let mut wire = format!("VA {length} O9\r\n").into_bytes();
            wire.extend_from_slice(&value);
            wire.extend_from_slice(b"\r\nEN O10\r\n");
            let mut socket = BufReader::new(&wire[..]);
            let mut line = Vec::new();
            let first = read_answer(&mut socket, &mut line).await.ok().unwrap();
            assert_eq!(
                first.unwrap().value.as_deref(),
                Some(&value[..]),
                "{length}"
            );
            // The stream stays in step after it.
            let next = read_answer(&mut socket, &mut line).await.ok().unwrap();
            assert_eq!(next.unwrap().rc, ReturnCode::En);
        }
    }

    #[tokio::test]
    async fn a_value_cut_short_fails_whatever_its_length() {
        for length in [5, UP_FRONT + 5, 1_000_000_000] {
            let wire = format!("VA {length} O9\r\nabcd").into_bytes();
            let mut socket = BufReader::new(&wire[..]);
            let mut line = Vec::new();
            let failure = read_answer(&mut socket, &mut line).await.err().unwrap();
            assert!(
                matches!(failure, Failure::Io(io::ErrorKind::UnexpectedEof, _)),
                "{length}: {failure:?}"
            );
        }
    }

    #[test]
    fn the_data_length_comes_from_the_header() {
        assert_eq!(data_length(b"VA 5 f0 O3").unwrap(), 5);
        assert_eq!(data_length(b"VA  12").unwrap(), 12);
        assert!(data_length(b"VA").is_err());
    }
}
