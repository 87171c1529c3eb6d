//! The DNS forwarder of transparent mode: the agent's DNS queries (UDP and TCP port 53,
//! redirected by `clawgate net rules`) arrive here. Each question is a `dns` action (name,
//! type) judged by policy; an allowed query is forwarded unchanged to the upstream resolver
//! (the system's, from `/etc/resolv.conf`, or `dns_upstream`) and its answer returned; a
//! refused one is answered `REFUSED` (not `NXDOMAIN`: the name is not said not to exist, and
//! nothing negative is cached) and reaches no resolver. Messages are read and written with
//! hickory-proto, never by hand.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Semaphore, watch};

use crate::action::{Action, AgentIdentity};
use crate::gate::{CheckRequest, Dispatched, Gate, Ruling};
use crate::identity::Identities;

/// Largest DNS message over UDP that is read (EDNS allows up to 64 KiB; answers above
/// 4096 bytes are rare and come over TCP).
const MAX_UDP: usize = 4096;

/// The forwarder's settings and shared state.
pub struct DnsForwarder {
    gate: Arc<Gate>,
    identities: Arc<Identities>,
    upstream: SocketAddr,
    timeout: Duration,
    slots: Arc<Semaphore>,
}

impl DnsForwarder {
    pub fn new(
        gate: Arc<Gate>,
        identities: Arc<Identities>,
        upstream: SocketAddr,
        timeout: Duration,
    ) -> DnsForwarder {
        DnsForwarder {
            gate,
            identities,
            upstream,
            timeout,
            slots: Arc::new(Semaphore::new(1024)),
        }
    }

    /// Answer UDP queries until shutdown.
    pub async fn serve_udp(
        self: Arc<Self>,
        socket: UdpSocket,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let socket = Arc::new(socket);
        let mut buf = vec![0u8; MAX_UDP];
        loop {
            let received = tokio::select! {
                r = socket.recv_from(&mut buf) => r,
                _ = shutdown.changed() => return,
            };
            let (n, peer) = match received {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(error = %e, "DNS forwarder: receive failed");
                    continue;
                }
            };
            let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                tracing::warn!(%peer, "DNS forwarder busy: query dropped");
                continue;
            };
            let query = buf[..n].to_vec();
            let (this, socket) = (self.clone(), socket.clone());
            tokio::spawn(async move {
                let agent = super::owner::datagram_agent(&this.identities, peer).await;
                if let Some(answer) = this.answer(&query, false, agent).await {
                    let _ = socket.send_to(&answer, peer).await;
                }
                drop(slot);
            });
        }
    }

    /// Answer TCP queries (two-byte length prefix, RFC 1035 §4.2.2) until shutdown.
    pub async fn serve_tcp(
        self: Arc<Self>,
        listener: TcpListener,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = shutdown.changed() => return,
            };
            let Ok((stream, peer)) = accepted else {
                continue;
            };
            let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                continue;
            };
            let this = self.clone();
            tokio::spawn(async move {
                let agent = match super::origdst::original_destination(&stream) {
                    Ok(orig) => super::owner::connection_agent(&this.identities, peer, orig).await,
                    Err(_) => AgentIdentity::default(),
                };
                let _ = tokio::time::timeout(
                    Duration::from_secs(30),
                    this.tcp_connection(stream, agent),
                )
                .await;
                drop(slot);
            });
        }
    }

    async fn tcp_connection(
        &self,
        mut stream: TcpStream,
        agent: AgentIdentity,
    ) -> std::io::Result<()> {
        loop {
            let len = match stream.read_u16().await {
                Ok(n) => usize::from(n),
                Err(_) => return Ok(()),
            };
            let mut query = vec![0u8; len];
            stream.read_exact(&mut query).await?;
            let Some(answer) = self.answer(&query, true, agent.clone()).await else {
                return Ok(());
            };
            let Ok(n) = u16::try_from(answer.len()) else {
                return Ok(());
            };
            stream.write_u16(n).await?;
            stream.write_all(&answer).await?;
        }
    }

    /// The answer to one query message: the upstream's when policy allows the question,
    /// `REFUSED` when it does not, `FORMERR` for a message that is not one plain question.
    /// `None`: not even a header to answer to.
    pub async fn answer(&self, query: &[u8], tcp: bool, agent: AgentIdentity) -> Option<Vec<u8>> {
        let id = u16::from_be_bytes([*query.first()?, *query.get(1)?]);
        let msg = match Message::from_vec(query) {
            Ok(m) => m,
            Err(_) => return error(id, OpCode::Query, ResponseCode::FormErr, None),
        };
        let op = msg.metadata.op_code;
        if msg.metadata.message_type != MessageType::Query {
            return None;
        }
        if op != OpCode::Query || msg.queries.len() != 1 {
            // Updates, notifies and multi-question messages are not lookups: refused unjudged.
            return error(id, op, ResponseCode::Refused, Some(&msg));
        }
        let (name, qtype) = asked(&msg.queries[0]);
        let request = CheckRequest {
            action: Action::dns(name.clone(), qtype.clone()),
            agent,
            requester: None,
        };
        // Nothing waits for an approval: a held lookup is answered REFUSED at once.
        let ruling = self.gate.rule(&request, Duration::ZERO).await;
        let decision = ruling.decision();
        tracing::info!(action_id = %decision.id, run_id = "", decision = decision.outcome.as_str(),
            name = %name, qtype = %qtype, "transparent dns");
        let permit = match ruling {
            Ruling::Allowed(p) => p,
            Ruling::Refused(_) => return error(id, op, ResponseCode::Refused, Some(&msg)),
        };
        match self.forward(query, tcp).await {
            Ok(answer) => {
                let rcode = Message::from_vec(&answer)
                    .map(|m| u16::from(m.metadata.response_code))
                    .unwrap_or(0);
                permit
                    .finish(Dispatched {
                        ok: true,
                        status: Some(rcode),
                        size: Some(answer.len() as u64),
                        ..Dispatched::default()
                    })
                    .await;
                Some(answer)
            }
            Err(e) => {
                permit.fail(e).await;
                error(id, op, ResponseCode::ServFail, Some(&msg))
            }
        }
    }

    /// Send the query unchanged to the upstream resolver and return its answer.
    async fn forward(&self, query: &[u8], tcp: bool) -> Result<Vec<u8>, String> {
        let up = self.upstream;
        let exchange = async {
            if tcp {
                let mut s = TcpStream::connect(up).await.map_err(|e| e.to_string())?;
                let len = u16::try_from(query.len()).map_err(|_| "query too long".to_string())?;
                s.write_u16(len).await.map_err(|e| e.to_string())?;
                s.write_all(query).await.map_err(|e| e.to_string())?;
                let n = s.read_u16().await.map_err(|e| e.to_string())?;
                let mut answer = vec![0u8; usize::from(n)];
                s.read_exact(&mut answer).await.map_err(|e| e.to_string())?;
                Ok::<_, String>(answer)
            } else {
                let bind: SocketAddr = if up.is_ipv4() {
                    SocketAddr::from(([0, 0, 0, 0], 0))
                } else {
                    SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
                };
                let s = UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
                s.connect(up).await.map_err(|e| e.to_string())?;
                s.send(query).await.map_err(|e| e.to_string())?;
                let mut buf = vec![0u8; 65_535];
                loop {
                    let n = s.recv(&mut buf).await.map_err(|e| e.to_string())?;
                    // Only the answer to this query (same id) counts.
                    if n >= 2 && buf[..2] == query[..2] {
                        return Ok(buf[..n].to_vec());
                    }
                }
            }
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(r) => r.map_err(|e: String| format!("the resolver {up} failed: {e}")),
            Err(_) => Err(format!(
                "the resolver {up} did not answer within {} ms",
                self.timeout.as_millis()
            )),
        }
    }
}

/// What a question asks: its name as policy sees it (presentation form, lower case, no
/// trailing dot; bytes that are not printable stay escaped, `\\000`) and its type.
pub fn asked(q: &hickory_proto::op::Query) -> (String, String) {
    let name = q
        .name()
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    (name, q.query_type().to_string())
}

/// An answer with no records: `rcode` for the question of `query` (when it has one).
fn error(id: u16, op: OpCode, rcode: ResponseCode, query: Option<&Message>) -> Option<Vec<u8>> {
    let mut out = Message::error_msg(id, op, rcode);
    if let Some(q) = query {
        out.add_queries(q.queries.iter().cloned());
        out.metadata.recursion_desired = q.metadata.recursion_desired;
    }
    out.metadata.recursion_available = true;
    out.to_vec().ok()
}
