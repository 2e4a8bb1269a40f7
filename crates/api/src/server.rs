//! The public listener. axum's `serve` accepts every connection and keeps it
//! for as long as the client likes, so slow or silent clients could hold
//! every file descriptor of the process (1,100 of them made the api
//! unreachable at a limit of 1,024). This accept loop bounds what a client
//! may take:
//!
//! - a request head must arrive complete within `HTTP_HEADER_READ_TIMEOUT_SECONDS`
//!   of the connection opening, or of its first byte after a keep-alive pause;
//! - a kept-alive connection with nothing in flight closes after
//!   `HTTP_KEEP_ALIVE_TIMEOUT_SECONDS`;
//! - at most `HTTP_MAX_CONNECTIONS` are open. When that many are, or the
//!   process runs out of descriptors, the oldest connection with no request
//!   in flight is closed to make room: a new client is still served while
//!   slow ones are shed, oldest first.
//!
//! Running out of descriptors never stops the loop: it sheds, backs off when
//! there is nothing to shed, and logs once per interval, not per error.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, HttpBody};
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Method, header};
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

use shared_core::config::HttpSettings;

use crate::middleware::App;

/// Descriptor shortages are logged at most this often.
const REPORT_EVERY: Duration = Duration::from_secs(10);
/// Longest pause between accept attempts when nothing can be shed.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The longest the deadline watcher sleeps between looks (a day), whatever
/// the timeouts: an instant further out than the clock can hold is a panic.
const LONGEST_WAIT_MS: u64 = 24 * 60 * 60 * 1000;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub max_connections: usize,
}

impl Limits {
    pub fn from_settings(http: &HttpSettings) -> Self {
        Self {
            header_read_timeout: http.header_read_timeout,
            keep_alive_timeout: http.keep_alive_timeout,
            max_connections: http.max_connections,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then stops
/// accepting and returns once every connection has closed (connections
/// finish their request in flight first; the caller bounds the wait).
pub async fn serve(listener: TcpListener, app: impl App, limits: Limits, shutdown: impl Future<Output = ()>) {
    let open = Arc::new(OpenConnections::default());
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    // The head deadline is ours (below): hyper's own would also cut
    // kept-alive connections at the head timeout.
    builder.http1().header_read_timeout(None);
    let mut shortage = Shortage::default();
    tokio::pin!(shutdown);
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                open.shed_oldest_idle();
                tokio::select! {
                    slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
                    () = &mut shutdown => break,
                }
            }
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                shortage.recovered();
                accepted
            }
            Err(err) => {
                // Out of descriptors (or a connection reset before it was
                // accepted): make room and retry, waiting longer each time
                // there was nothing to shed.
                let shed = open.shed_oldest_idle();
                let pause = shortage.failed(&err, open.len(), shed);
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let connection = open.register();
        let service = service(app.clone(), peer, connection.clone());
        let io = TokioIo::new(Watched { stream, connection: connection.clone() });
        let serving = graceful.watch(builder.serve_connection_with_upgrades(io, service).into_owned());
        tokio::spawn(run_connection(serving, connection, limits, slot, open.clone()));
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Drives one connection until it ends or its deadline passes; dropping the
/// connection's future closes the socket.
async fn run_connection<E: std::fmt::Display>(
    serving: impl Future<Output = Result<(), E>>,
    connection: Arc<Connection>,
    limits: Limits,
    _slot: OwnedSemaphorePermit,
    open: Arc<OpenConnections>,
) {
    tokio::select! {
        served = serving => {
            if let Err(err) = served {
                // A client that resets or sends garbage is not a server error.
                tracing::debug!(error = %err, "connection ended with an error");
            }
        }
        () = connection.expired(limits) => {}
    }
    open.remove(connection.id);
}

/// The app as a hyper service, with the peer address for `ConnectInfo`
/// and each request counted on its connection.
fn service(
    app: impl App,
    peer: SocketAddr,
    connection: Arc<Connection>,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = Response,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<Response, std::convert::Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let in_flight = InFlight::start(&connection);
        let app = app.clone();
        let head = request.method() == Method::HEAD;
        async move {
            let response = app.oneshot(request.map(Body::new)).await;
            drop(in_flight);
            response.map(|response| if head { without_body(response) } else { response })
        }
    })
}

/// A HEAD response says how long its body would be and sends none. The
/// router empties the ones it makes, but the layers around it can give one
/// a body again (the JSON body of a 405, the 503 of a shutdown), and over
/// HTTP/2 hyper would send it, which a client takes as a protocol error.
fn without_body(mut response: Response) -> Response {
    if !response.headers().contains_key(header::CONTENT_LENGTH)
        && let Some(size) = response.body().size_hint().exact()
    {
        response.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    }
    *response.body_mut() = Body::empty();
    response
}

/// Milliseconds since the server's clock started: cheap to store atomically.
fn now_ms() -> u64 {
    static START: LazyLock<Instant> = LazyLock::new(Instant::now);
    START.elapsed().as_millis() as u64
}

/// What the deadlines of one connection are measured from.
struct Connection {
    id: u64,
    in_flight: AtomicUsize,
    /// A request head is on its way (or the connection has not sent its
    /// first one yet): the head deadline applies, not the keep-alive one.
    awaiting_head: AtomicBool,
    /// When the current wait began, in `now_ms`.
    since_ms: AtomicU64,
    shed: Notify,
    shed_requested: AtomicBool,
}

impl Connection {
    fn new(id: u64) -> Self {
        Self {
            id,
            in_flight: AtomicUsize::new(0),
            awaiting_head: AtomicBool::new(true),
            since_ms: AtomicU64::new(now_ms()),
            shed: Notify::new(),
            shed_requested: AtomicBool::new(false),
        }
    }

    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    /// Bytes arrived: after a keep-alive pause they start a new head. Only
    /// the connection's own task reads from it, so nothing else sets
    /// `awaiting_head`; the start is stored first, so that the watcher never
    /// sees a head awaited since the last response (already past due after
    /// a pause longer than the head timeout).
    fn bytes_read(&self) {
        if self.is_idle() && !self.awaiting_head.load(Ordering::Acquire) {
            self.since_ms.store(now_ms(), Ordering::Release);
            self.awaiting_head.store(true, Ordering::Release);
        }
    }

    /// Returns when the connection should be closed: its head or keep-alive
    /// deadline passed with nothing in flight, or it was shed to make room.
    ///
    /// It goes by the clock, at least once per head or keep-alive timeout,
    /// whichever is shorter, and nothing on a request's way wakes it: woken
    /// at every head, request start and request end, and setting a timer
    /// each time, it cost a tenth of a /healthz request. A head can start,
    /// and a request end, at any moment; the deadline either sets is never
    /// before the next look.
    async fn expired(&self, limits: Limits) {
        // Saturating: a timeout set to "forever" must not overflow the clock.
        let ms = |timeout: Duration| u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let look_ms = ms(limits.header_read_timeout.min(limits.keep_alive_timeout));
        let timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(timer);
        loop {
            let idle = self.is_idle();
            let timeout = if self.awaiting_head.load(Ordering::Acquire) {
                limits.header_read_timeout
            } else {
                limits.keep_alive_timeout
            };
            let deadline = self.since_ms.load(Ordering::Acquire).saturating_add(ms(timeout));
            let now = now_ms();
            if idle && deadline <= now {
                return;
            }
            let next_look = now.saturating_add(look_ms);
            let next = if idle { deadline.min(next_look) } else { next_look };
            timer
                .as_mut()
                .reset(tokio::time::Instant::now() + Duration::from_millis((next - now).min(LONGEST_WAIT_MS)));
            tokio::select! {
                () = &mut timer => {}
                () = self.shed.notified() => {
                    if self.is_idle() {
                        return;
                    }
                    self.shed_requested.store(false, Ordering::Release);
                }
            }
        }
    }
}

/// Counts one request on its connection for as long as it is in flight.
struct InFlight(Arc<Connection>);

impl InFlight {
    fn start(connection: &Arc<Connection>) -> Self {
        connection.in_flight.fetch_add(1, Ordering::AcqRel);
        connection.awaiting_head.store(false, Ordering::Release);
        Self(connection.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // Stored before the count falls, so that the watcher never sees the
        // connection idle since the head of a request that has just ended.
        // (While others are in flight, `since_ms` is not read.)
        self.0.since_ms.store(now_ms(), Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The open connections, oldest first, for shedding.
#[derive(Default)]
struct OpenConnections {
    next_id: AtomicU64,
    by_age: Mutex<BTreeMap<u64, Arc<Connection>>>,
}

impl OpenConnections {
    fn register(&self) -> Arc<Connection> {
        let connection = Arc::new(Connection::new(self.next_id.fetch_add(1, Ordering::Relaxed)));
        self.by_age.lock().unwrap_or_else(PoisonError::into_inner).insert(connection.id, connection.clone());
        connection
    }

    fn remove(&self, id: u64) {
        self.by_age.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
    }

    fn len(&self) -> usize {
        self.by_age.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Asks the oldest connection with nothing in flight to close; `false`
    /// when every connection is busy.
    fn shed_oldest_idle(&self) -> bool {
        let by_age = self.by_age.lock().unwrap_or_else(PoisonError::into_inner);
        let oldest = by_age.values().find(|c| c.is_idle() && !c.shed_requested.swap(true, Ordering::AcqRel));
        oldest.map(|connection| connection.shed.notify_one()).is_some()
    }
}

/// A descriptor shortage in progress: how long to pause, and when it was
/// last reported.
#[derive(Default)]
struct Shortage {
    consecutive: u32,
    since_report: u64,
    reported_at: Option<Instant>,
}

impl Shortage {
    fn failed(&mut self, err: &io::Error, open: usize, shed: bool) -> Duration {
        self.since_report += 1;
        if self.reported_at.is_none_or(|at| at.elapsed() >= REPORT_EVERY) {
            tracing::warn!(
                error = %err,
                open_connections = open,
                failures = self.since_report,
                "cannot accept connections; closing idle ones and retrying"
            );
            self.reported_at = Some(Instant::now());
            self.since_report = 0;
        }
        if shed {
            // A connection is closing: its descriptor is free in a moment.
            self.consecutive = 0;
            return Duration::from_millis(1);
        }
        self.consecutive = self.consecutive.saturating_add(1);
        (Duration::from_millis(1) * 2u32.saturating_pow(self.consecutive.min(10))).min(MAX_BACKOFF)
    }

    fn recovered(&mut self) {
        self.consecutive = 0;
    }
}

/// The TCP stream, telling its connection when bytes arrive.
struct Watched {
    stream: TcpStream,
    connection: Arc<Connection>,
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.connection.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
