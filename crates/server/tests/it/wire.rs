//! A small Postgres frontend for tests that psql cannot drive: one connection kept open across
//! statements, the extended protocol (Parse/Bind/Describe/Execute/Sync) with named statements,
//! portals and row limits, COPY OUT, cancel requests, and dropping the connection mid-query. It
//! speaks the wire protocol byte for byte (protocol 3.0, cleartext password), like libpq does.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An error the server sent (`ErrorResponse`), or the connection ending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgError {
    pub severity: String,
    pub code: String,
    pub message: String,
}

impl PgError {
    fn closed() -> PgError {
        PgError { severity: "FATAL".into(), code: "08006".into(), message: "the server closed the connection".into() }
    }
}

/// Rows of a result, as text (`None` for NULL).
pub type Rows = Vec<Vec<Option<String>>>;

/// What a `COPY … TO STDOUT` sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOut {
    /// CopyOutResponse: 0 text (and CSV), 1 binary.
    pub format: i8,
    pub column_formats: Vec<i16>,
    /// Each CopyData message.
    pub data: Vec<Vec<u8>>,
    /// The CommandComplete tag, e.g. `COPY 3`.
    pub tag: String,
}

impl CopyOut {
    /// Every CopyData message, one after the other.
    pub fn bytes(&self) -> Vec<u8> {
        self.data.concat()
    }

    /// The data as text.
    pub fn text(&self) -> String {
        String::from_utf8(self.bytes()).unwrap()
    }
}

/// One open connection.
pub struct Wire {
    socket: TcpStream,
    port: u16,
    pid: i32,
    key: i32,
    /// Every NoticeResponse received so far (severity, code, message), in order.
    pub notices: Vec<PgError>,
}

impl Wire {
    /// Connects and authenticates with `password` (an API token or a JWT).
    pub async fn connect(port: u16, password: &str) -> Result<Wire, PgError> {
        let mut socket = TcpStream::connect(("127.0.0.1", port)).await.expect("the server listens");
        let mut body = Vec::new();
        body.extend_from_slice(&196608i32.to_be_bytes());
        for (k, v) in [("user", "tester"), ("database", "meshwork")] {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut startup = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        startup.extend_from_slice(&body);
        socket.write_all(&startup).await.unwrap();
        let mut wire = Wire { socket, port, pid: 0, key: 0, notices: Vec::new() };
        let (tag, _) = wire.read().await?;
        assert_eq!(tag, b'R', "the server asks for a password");
        wire.send(b'p', &cstr(password)).await;
        loop {
            let (tag, body) = wire.read().await?;
            match tag {
                b'K' => {
                    wire.pid = i32::from_be_bytes(body[0..4].try_into().unwrap());
                    wire.key = i32::from_be_bytes(body[4..8].try_into().unwrap());
                }
                b'E' => return Err(error_fields(&body)),
                b'Z' => return Ok(wire),
                _ => {}
            }
        }
    }

    /// Runs `sql` with the simple protocol; the rows of its last statement.
    pub async fn simple(&mut self, sql: &str) -> Result<Rows, PgError> {
        self.send(b'Q', &cstr(sql)).await;
        self.collect().await
    }

    /// Parses `sql` as the named statement `name` (extended protocol).
    pub async fn prepare(&mut self, name: &str, sql: &str) -> Result<(), PgError> {
        let mut body = cstr(name);
        body.extend_from_slice(&cstr(sql));
        body.extend_from_slice(&0i16.to_be_bytes());
        self.send(b'P', &body).await;
        self.send(b'S', &[]).await;
        self.collect().await.map(|_| ())
    }

    /// Runs `sql` with the simple protocol: the rows and the command tag of its last statement.
    pub async fn command(&mut self, sql: &str) -> Result<(Rows, String), PgError> {
        self.send(b'Q', &cstr(sql)).await;
        self.collect_tagged().await
    }

    /// Runs a `COPY … TO STDOUT` with the simple protocol.
    pub async fn copy_out(&mut self, sql: &str) -> Result<CopyOut, PgError> {
        self.send(b'Q', &cstr(sql)).await;
        self.collect_copy().await
    }

    /// Runs a `COPY … TO STDOUT` with the extended protocol, as the ADBC driver does: Parse,
    /// Bind with binary results, Describe, Execute, Sync.
    pub async fn copy_out_extended(&mut self, sql: &str) -> Result<CopyOut, PgError> {
        let mut body = cstr("");
        body.extend_from_slice(&cstr(sql));
        body.extend_from_slice(&0i16.to_be_bytes());
        self.send(b'P', &body).await;
        self.send_bind_with("", "", &[], 1).await;
        self.send(b'D', &[b"P".as_slice(), &cstr("")].concat()).await;
        self.send_execute("", 0).await;
        self.send(b'S', &[]).await;
        self.collect_copy().await
    }

    /// Parses `sql` unnamed, binds `params` (text) and runs it to its end, as psycopg 3 sends
    /// a parameterised statement: the rows and the command tag.
    pub async fn run_with(&mut self, sql: &str, params: &[&str]) -> Result<(Rows, String), PgError> {
        let mut body = cstr("");
        body.extend_from_slice(&cstr(sql));
        body.extend_from_slice(&0i16.to_be_bytes());
        self.send(b'P', &body).await;
        self.send_bind_with("", "", params, 0).await;
        self.send_execute("", 0).await;
        self.send(b'S', &[]).await;
        self.collect_tagged().await
    }

    /// Sends `sql` with the extended protocol (Parse, Bind, Execute with no row limit, Sync)
    /// without waiting for its answer.
    pub async fn send_run(&mut self, sql: &str) {
        let mut body = cstr("");
        body.extend_from_slice(&cstr(sql));
        body.extend_from_slice(&0i16.to_be_bytes());
        self.send(b'P', &body).await;
        self.send_bind_with("", "", &[], 0).await;
        self.send_execute("", 0).await;
        self.send(b'S', &[]).await;
    }

    /// The column names `Describe P 'portal'` answers (empty for NoData).
    pub async fn describe_portal(&mut self, portal: &str) -> Result<Vec<String>, PgError> {
        self.send(b'D', &[b"P".as_slice(), &cstr(portal)].concat()).await;
        self.send(b'S', &[]).await;
        let (mut names, mut error) = (Vec::new(), None);
        loop {
            match self.read().await? {
                (b'T', body) => names = row_description(&body),
                (b'E', body) => error = Some(error_fields(&body)),
                (b'Z', _) => return error.map_or(Ok(names), Err),
                _ => {}
            }
        }
    }

    /// Executes the portal `portal` for at most `max_rows` rows: the rows, and whether the
    /// portal was suspended with rows left (`PortalSuspended`) rather than complete.
    pub async fn execute_some(&mut self, portal: &str, max_rows: i32) -> Result<(Rows, bool), PgError> {
        self.send_execute(portal, max_rows).await;
        self.send(b'S', &[]).await;
        let (mut rows, mut suspended, mut error) = (Vec::new(), false, None);
        loop {
            match self.read().await? {
                (b'D', body) => rows.push(data_row(&body)),
                (b's', _) => suspended = true,
                (b'E', body) => error = Some(error_fields(&body)),
                (b'Z', _) => return error.map_or(Ok((rows, suspended)), Err),
                _ => {}
            }
        }
    }

    /// Reads the answer of a COPY sent with [`Wire::send_query`] up to its first CopyData.
    pub async fn first_copy_data(&mut self) -> Result<(), PgError> {
        loop {
            match self.read().await? {
                (b'd', _) => return Ok(()),
                (b'E', body) => return Err(error_fields(&body)),
                _ => {}
            }
        }
    }

    /// Reads the rest of a COPY, counting its CopyData messages.
    pub async fn count_copy_rest(&mut self) -> Result<usize, PgError> {
        let (mut rows, mut error) = (0, None);
        loop {
            match self.read().await {
                Ok((b'd', _)) => rows += 1,
                Ok((b'E', body)) => error = Some(error_fields(&body)),
                Ok((b'Z', _)) => return error.map_or(Ok(rows), Err),
                Ok(_) => {}
                Err(closed) => return Err(error.unwrap_or(closed)),
            }
        }
    }

    /// Binds the named statement `statement` into the portal `portal`, without running it.
    pub async fn bind(&mut self, statement: &str, portal: &str) -> Result<(), PgError> {
        self.send_bind(statement, portal).await;
        self.send(b'S', &[]).await;
        self.collect().await.map(|_| ())
    }

    /// Executes the portal `portal` to its end.
    pub async fn execute(&mut self, portal: &str) -> Result<Rows, PgError> {
        let mut body = cstr(portal);
        body.extend_from_slice(&0i32.to_be_bytes());
        self.send(b'E', &body).await;
        self.send(b'S', &[]).await;
        self.collect().await
    }

    /// Binds and executes the named statement in the unnamed portal, like a driver running a
    /// prepared statement again.
    pub async fn run_prepared(&mut self, statement: &str) -> Result<Rows, PgError> {
        self.send_bind(statement, "").await;
        let mut body = cstr("");
        body.extend_from_slice(&0i32.to_be_bytes());
        self.send(b'E', &body).await;
        self.send(b'S', &[]).await;
        self.collect().await
    }

    /// Sends a cancel request for this connection, on a connection of its own.
    pub async fn cancel(port: u16, pid: i32, key: i32) {
        let mut socket = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut message = 16i32.to_be_bytes().to_vec();
        message.extend_from_slice(&80877102i32.to_be_bytes());
        message.extend_from_slice(&pid.to_be_bytes());
        message.extend_from_slice(&key.to_be_bytes());
        socket.write_all(&message).await.unwrap();
        let _ = socket.read(&mut [0u8; 1]).await;
    }

    /// Where to send a cancel request for this connection: port, pid and key.
    pub fn cancel_key(&self) -> (u16, i32, i32) {
        (self.port, self.pid, self.key)
    }

    /// Sends a simple query without waiting for its answer.
    pub async fn send_query(&mut self, sql: &str) {
        self.send(b'Q', &cstr(sql)).await;
    }

    /// Reads the answer of a query sent with [`Wire::send_query`].
    pub async fn answer(&mut self) -> Result<Rows, PgError> {
        self.collect().await
    }

    /// Reads the answer of a query sent with [`Wire::send_query`] up to its first row.
    pub async fn first_row(&mut self) -> Result<(), PgError> {
        loop {
            match self.read().await? {
                (b'D', _) => return Ok(()),
                (b'E', body) => return Err(error_fields(&body)),
                _ => {}
            }
        }
    }

    /// Reads the rest of an answer, counting its rows instead of keeping them.
    pub async fn count_rest(&mut self) -> Result<usize, PgError> {
        let (mut rows, mut error) = (0, None);
        loop {
            match self.read().await {
                Ok((b'D', _)) => rows += 1,
                Ok((b'E', body)) => error = Some(error_fields(&body)),
                Ok((b'Z', _)) => return error.map_or(Ok(rows), Err),
                Ok(_) => {}
                Err(closed) => return Err(error.unwrap_or(closed)),
            }
        }
    }

    async fn send_bind(&mut self, statement: &str, portal: &str) {
        self.send_bind_with(statement, portal, &[], 0).await;
    }

    /// Bind with text parameters and one result format for every column.
    async fn send_bind_with(&mut self, statement: &str, portal: &str, params: &[&str], result_format: i16) {
        let mut body = cstr(portal);
        body.extend_from_slice(&cstr(statement));
        body.extend_from_slice(&0i16.to_be_bytes());
        body.extend_from_slice(&(params.len() as i16).to_be_bytes());
        for param in params {
            body.extend_from_slice(&(param.len() as i32).to_be_bytes());
            body.extend_from_slice(param.as_bytes());
        }
        if result_format == 0 {
            body.extend_from_slice(&0i16.to_be_bytes());
        } else {
            body.extend_from_slice(&1i16.to_be_bytes());
            body.extend_from_slice(&result_format.to_be_bytes());
        }
        self.send(b'B', &body).await;
    }

    async fn send_execute(&mut self, portal: &str, max_rows: i32) {
        let mut body = cstr(portal);
        body.extend_from_slice(&max_rows.to_be_bytes());
        self.send(b'E', &body).await;
    }

    /// Reads messages up to `ReadyForQuery`: the rows and the tag of the last statement.
    async fn collect_tagged(&mut self) -> Result<(Rows, String), PgError> {
        let (mut rows, mut tag, mut error) = (Vec::new(), String::new(), None);
        loop {
            let (kind, body) = match self.read().await {
                Ok(message) => message,
                Err(closed) => return Err(error.unwrap_or(closed)),
            };
            match kind {
                b'T' => rows.clear(),
                b'D' => rows.push(data_row(&body)),
                b'C' => tag = String::from_utf8_lossy(&body[..body.len() - 1]).into_owned(),
                b'E' => error = Some(error_fields(&body)),
                b'Z' => return error.map_or(Ok((rows, tag)), Err),
                _ => {}
            }
        }
    }

    /// Reads a COPY OUT up to `ReadyForQuery`.
    async fn collect_copy(&mut self) -> Result<CopyOut, PgError> {
        let mut copy = CopyOut { format: -1, column_formats: Vec::new(), data: Vec::new(), tag: String::new() };
        let mut error = None;
        loop {
            let (kind, body) = match self.read().await {
                Ok(message) => message,
                Err(closed) => return Err(error.unwrap_or(closed)),
            };
            match kind {
                b'H' => {
                    copy.format = body[0] as i8;
                    let n = i16::from_be_bytes(body[1..3].try_into().unwrap()) as usize;
                    copy.column_formats = (0..n).map(|i| i16::from_be_bytes(body[3 + 2 * i..5 + 2 * i].try_into().unwrap())).collect();
                }
                b'd' => copy.data.push(body),
                b'C' => copy.tag = String::from_utf8_lossy(&body[..body.len() - 1]).into_owned(),
                b'E' => error = Some(error_fields(&body)),
                b'f' => panic!("the server sent CopyFail, a frontend message"),
                b'Z' => return error.map_or(Ok(copy), Err),
                _ => {}
            }
        }
    }

    /// Reads messages up to `ReadyForQuery`: the data rows, or the first error.
    async fn collect(&mut self) -> Result<Rows, PgError> {
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let (tag, body) = match self.read().await {
                Ok(message) => message,
                // An error followed by the server closing the connection (FATAL).
                Err(closed) => return Err(error.unwrap_or(closed)),
            };
            match tag {
                b'T' => rows.clear(),
                b'D' => rows.push(data_row(&body)),
                b'E' => error = Some(error_fields(&body)),
                b'Z' => return error.map_or(Ok(rows), Err),
                _ => {}
            }
        }
    }

    pub(crate) async fn send(&mut self, tag: u8, body: &[u8]) {
        let mut message = vec![tag];
        message.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        message.extend_from_slice(body);
        // A server that closed the connection shows up on the next read.
        let _ = self.socket.write_all(&message).await;
    }

    /// The next message; NoticeResponses are kept in [`Wire::notices`] and passed over, as
    /// drivers hand them to a notice handler rather than to the query's caller.
    pub(crate) async fn read(&mut self) -> Result<(u8, Vec<u8>), PgError> {
        loop {
            let mut head = [0u8; 5];
            self.socket.read_exact(&mut head).await.map_err(|_| PgError::closed())?;
            let len = i32::from_be_bytes(head[1..5].try_into().unwrap()) as usize - 4;
            let mut body = vec![0u8; len];
            self.socket.read_exact(&mut body).await.map_err(|_| PgError::closed())?;
            if head[0] == b'N' {
                self.notices.push(error_fields(&body));
                continue;
            }
            return Ok((head[0], body));
        }
    }
}

pub(crate) fn cstr(text: &str) -> Vec<u8> {
    let mut out = text.as_bytes().to_vec();
    out.push(0);
    out
}

pub(crate) fn data_row(body: &[u8]) -> Vec<Option<String>> {
    let n = i16::from_be_bytes(body[0..2].try_into().unwrap()) as usize;
    let mut at = 2;
    let mut row = Vec::with_capacity(n);
    for _ in 0..n {
        let len = i32::from_be_bytes(body[at..at + 4].try_into().unwrap());
        at += 4;
        if len < 0 {
            row.push(None);
        } else {
            row.push(Some(String::from_utf8_lossy(&body[at..at + len as usize]).into_owned()));
            at += len as usize;
        }
    }
    row
}

fn row_description(body: &[u8]) -> Vec<String> {
    let n = i16::from_be_bytes(body[0..2].try_into().unwrap()) as usize;
    let mut at = 2;
    let mut names = Vec::with_capacity(n);
    for _ in 0..n {
        let end = at + body[at..].iter().position(|b| *b == 0).unwrap();
        names.push(String::from_utf8_lossy(&body[at..end]).into_owned());
        at = end + 1 + 18;
    }
    names
}

pub(crate) fn error_fields(body: &[u8]) -> PgError {
    let mut error = PgError { severity: String::new(), code: String::new(), message: String::new() };
    for field in body.split(|b| *b == 0).filter(|f| !f.is_empty()) {
        let text = String::from_utf8_lossy(&field[1..]).into_owned();
        match field[0] {
            b'S' => error.severity = text,
            b'C' => error.code = text,
            b'M' => error.message = text,
            _ => {}
        }
    }
    error
}
