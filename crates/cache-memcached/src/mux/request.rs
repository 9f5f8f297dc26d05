//! The cache's requests as the crate's meta commands, and their answers read back from
//! the crate's replies (as [`Reply`], what the cache keeps of them).
//!
//! The crate's typed operations (`Get`, `Set`, `Delete`) copy the key into every command
//! they prepare and again into every result, copy a value once more on top of the
//! caller's copy, and ask for the client flags, which the cache does not use. Built here
//! with [`MetaCommand`]'s own builder, the key moves into the command, and the opaque
//! token that pairs an answer with its request is one of its flags. A write's value is
//! not moved into the command (it takes only a `Vec<u8>`, so the caller's `Bytes` would
//! be copied into one first): the crate encodes the command line, with the value's
//! length as its first token, and the value is appended from the caller's buffer.

use cache_api::Bytes;
use memcache::exp::{Error, MetaCommand, MetaOp, MutationStatus, ReturnCode};

use super::connection::Reply;

/// One command of the cache and how its answer reads.
pub(crate) trait Request {
    /// What the answer means to the cache.
    type Output;

    /// The key the request is routed by, until [`command`](Self::command) takes it.
    fn key(&self) -> &[u8];

    /// The bytes of key and value the command will hold.
    fn size(&self) -> usize {
        self.key().len()
    }

    /// The meta command line carrying the opaque token `token`. The key moves into it:
    /// the request keeps only what reading the answer and [`data`](Self::data) need.
    fn command(&mut self, token: u32) -> MetaCommand;

    /// The data block sent after the command line, if the command has one.
    fn data(&self) -> Option<&[u8]> {
        None
    }

    /// Appends the whole request (command line, then its data block) to `payload`.
    ///
    /// # Errors
    ///
    /// `Usage` for a command the crate cannot encode (a key memcached cannot take).
    fn encode_into(&mut self, token: u32, payload: &mut Vec<u8>) -> Result<(), Error> {
        self.command(token).encode_into(payload)?;
        if let Some(data) = self.data() {
            payload.extend_from_slice(data);
            payload.extend_from_slice(b"\r\n");
        }
        Ok(())
    }

    /// Reads the server's answer to the command.
    ///
    /// # Errors
    ///
    /// `Protocol` for an answer this command cannot have.
    fn parse(&self, answer: Reply) -> Result<Self::Output, Error>;
}

/// `mg <key> v`: the value, `None` on a miss.
pub(crate) struct Read {
    key: Vec<u8>,
}

impl Read {
    pub(crate) fn new(key: Vec<u8>) -> Self {
        Self { key }
    }
}

impl Request for Read {
    type Output = Option<Vec<u8>>;

    fn key(&self) -> &[u8] {
        &self.key
    }

    fn command(&mut self, token: u32) -> MetaCommand {
        with_token(
            MetaCommand::new(MetaOp::Get, std::mem::take(&mut self.key)).flag(&b"v"[..]),
            token,
        )
    }

    fn parse(&self, answer: Reply) -> Result<Self::Output, Error> {
        match answer.rc {
            ReturnCode::Va => Ok(Some(answer.value.unwrap_or_default())),
            // A hit without its value block: an empty value.
            ReturnCode::Hd => Ok(Some(Vec::new())),
            ReturnCode::En => Ok(None),
            other => Err(unexpected("get", other)),
        }
    }
}

/// `mg <key>`: whether the key is there, without its value.
pub(crate) struct Probe {
    key: Vec<u8>,
}

impl Probe {
    pub(crate) fn new(key: Vec<u8>) -> Self {
        Self { key }
    }
}

impl Request for Probe {
    type Output = bool;

    fn key(&self) -> &[u8] {
        &self.key
    }

    fn command(&mut self, token: u32) -> MetaCommand {
        with_token(
            MetaCommand::new(MetaOp::Get, std::mem::take(&mut self.key)),
            token,
        )
    }

    fn parse(&self, answer: Reply) -> Result<Self::Output, Error> {
        match answer.rc {
            ReturnCode::Hd | ReturnCode::Va => Ok(true),
            ReturnCode::En => Ok(false),
            other => Err(unexpected("get", other)),
        }
    }
}

/// `ms <key> <length> [ME] [T<expiry>]`: stores a value, or with `add` only when the key
/// is absent.
pub(crate) struct Write {
    key: Vec<u8>,
    value: Bytes,
    /// The raw `T` token: seconds up to 30 days, beyond that a unix time.
    expiry: Option<u32>,
    add: bool,
}

impl Write {
    pub(crate) fn new(key: Vec<u8>, value: Bytes, expiry: Option<u32>) -> Self {
        Self {
            key,
            value,
            expiry,
            add: false,
        }
    }

    /// Stores only when the key is absent (`ME`): an existing key answers
    /// [`MutationStatus::AlreadyExists`].
    pub(crate) fn add(mut self) -> Self {
        self.add = true;
        self
    }
}

impl Request for Write {
    type Output = MutationStatus;

    fn key(&self) -> &[u8] {
        &self.key
    }

    fn size(&self) -> usize {
        // The value's length and its line end besides.
        self.key.len() + self.value.len() + 12
    }

    /// `ms <key> <length> <flags>*`: the length is the first token after the key,
    /// which the crate writes for a command holding its value and is given here as the
    /// first flag, the value following as [`data`](Self::data).
    fn command(&mut self, token: u32) -> MetaCommand {
        let length = number_token(b"", self.value.len());
        let mut command = MetaCommand::new(MetaOp::Set, std::mem::take(&mut self.key)).flag(length);
        if self.add {
            command = command.flag(&b"ME"[..]);
        }
        if let Some(expiry) = self.expiry {
            command = command.flag(number_token(b"T", expiry));
        }
        with_token(command, token)
    }

    fn data(&self) -> Option<&[u8]> {
        Some(&self.value)
    }

    fn parse(&self, answer: Reply) -> Result<Self::Output, Error> {
        mutation_status(if self.add { "add" } else { "set" }, self.add, answer.rc)
    }
}

/// `md <key>`.
pub(crate) struct Remove {
    key: Vec<u8>,
}

impl Remove {
    pub(crate) fn new(key: Vec<u8>) -> Self {
        Self { key }
    }
}

impl Request for Remove {
    type Output = MutationStatus;

    fn key(&self) -> &[u8] {
        &self.key
    }

    fn command(&mut self, token: u32) -> MetaCommand {
        with_token(
            MetaCommand::new(MetaOp::Delete, std::mem::take(&mut self.key)),
            token,
        )
    }

    fn parse(&self, answer: Reply) -> Result<Self::Output, Error> {
        mutation_status("delete", false, answer.rc)
    }
}

/// `command` with the opaque token `O<token>` as its last flag.
fn with_token(command: MetaCommand, token: u32) -> MetaCommand {
    command.flag(number_token(b"O", token))
}

/// A token of a prefix and a number: `T60`, `O17`, or a bare length, `16384`.
fn number_token(prefix: &[u8], number: impl itoa::Integer) -> Vec<u8> {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(number).as_bytes();
    let mut token = Vec::with_capacity(prefix.len() + digits.len());
    token.extend_from_slice(prefix);
    token.extend_from_slice(digits);
    token
}

/// What the answer to a write or delete says, as the crate reads it.
fn mutation_status(command: &str, add: bool, code: ReturnCode) -> Result<MutationStatus, Error> {
    match code {
        ReturnCode::Hd | ReturnCode::Va => Ok(MutationStatus::Applied),
        ReturnCode::Ex => Ok(MutationStatus::CasMismatch),
        ReturnCode::Nf => Ok(MutationStatus::NotFound),
        ReturnCode::Ns if add => Ok(MutationStatus::AlreadyExists),
        ReturnCode::Ns => Ok(MutationStatus::NotFound),
        other => Err(unexpected(command, other)),
    }
}

fn unexpected(command: &str, code: ReturnCode) -> Error {
    Error::Protocol(format!("memcached answered a {command} with {code:?}"))
}

#[cfg(test)]
mod tests {
    use memcache::exp::{parse_meta_result, MetaResponse};

    use super::*;

    fn wire(mut request: impl Request, token: u32) -> String {
        let mut payload = Vec::new();
        request.encode_into(token, &mut payload).unwrap();
        String::from_utf8(payload).unwrap()
    }

    fn answer(header: &str, value: Option<&[u8]>) -> Reply {
        let mut reply = Reply::from(
            parse_meta_result(MetaResponse::parse_header(header.as_bytes()).unwrap()).unwrap(),
        );
        // The reader fills in the value block the header announced.
        reply.value = value.map(<[u8]>::to_vec);
        reply
    }

    #[test]
    fn commands_carry_their_key_flags_and_token() {
        assert_eq!(wire(Read::new(b"k".to_vec()), 7), "mg k v O7\r\n");
        assert_eq!(wire(Probe::new(b"k".to_vec()), 8), "mg k O8\r\n");
        assert_eq!(wire(Remove::new(b"k".to_vec()), 9), "md k O9\r\n");
        assert_eq!(
            wire(
                Write::new(b"k".to_vec(), Bytes::from_static(b"abc"), None),
                10
            ),
            "ms k 3 O10\r\nabc\r\n"
        );
        assert_eq!(
            wire(
                Write::new(
                    b"k".to_vec(),
                    Bytes::from_static(b"abc"),
                    Some(1_900_000_000)
                )
                .add(),
                u32::MAX
            ),
            "ms k 3 ME T1900000000 O4294967295\r\nabc\r\n"
        );
        // A key memcached cannot take as it is goes out in base64, as the crate sends it.
        assert_eq!(wire(Read::new(b"a b".to_vec()), 1), "mg YSBi v O1 b\r\n");
        assert_eq!(
            wire(
                Write::new(b"a b".to_vec(), Bytes::from_static(b"v"), None),
                2
            ),
            "ms YSBi 1 O2 b\r\nv\r\n"
        );
        // An empty value still has its (empty) data block.
        assert_eq!(
            wire(Write::new(b"k".to_vec(), Bytes::new(), Some(60)), 3),
            "ms k 0 T60 O3\r\n\r\n"
        );
    }

    #[test]
    fn a_key_the_server_cannot_take_is_refused_before_sending() {
        let mut payload = Vec::new();
        let error = Read::new(vec![b'x'; 251])
            .encode_into(1, &mut payload)
            .unwrap_err();
        assert!(matches!(error, Error::Usage(_)), "{error:?}");
    }

    #[test]
    fn answers_read_as_the_cache_needs_them() {
        let read = Read::new(Vec::new());
        assert_eq!(
            read.parse(answer("VA 3 O1", Some(b"abc"))).unwrap(),
            Some(b"abc".to_vec())
        );
        assert_eq!(read.parse(answer("EN", None)).unwrap(), None);
        assert!(matches!(
            read.parse(answer("NS O1", None)),
            Err(Error::Protocol(_))
        ));
        let probe = Probe::new(Vec::new());
        assert!(probe.parse(answer("HD O1", None)).unwrap());
        assert!(!probe.parse(answer("EN", None)).unwrap());
        let set = Write::new(Vec::new(), Bytes::new(), None);
        assert_eq!(
            set.parse(answer("HD O1", None)).unwrap(),
            MutationStatus::Applied
        );
        assert_eq!(
            set.parse(answer("NS O1", None)).unwrap(),
            MutationStatus::NotFound
        );
        let add = Write::new(Vec::new(), Bytes::new(), None).add();
        assert_eq!(
            add.parse(answer("NS O1", None)).unwrap(),
            MutationStatus::AlreadyExists
        );
        let remove = Remove::new(Vec::new());
        assert_eq!(
            remove.parse(answer("NF O1", None)).unwrap(),
            MutationStatus::NotFound
        );
        assert!(matches!(
            remove.parse(answer("EN", None)),
            Err(Error::Protocol(_))
        ));
    }
}
