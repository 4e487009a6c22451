//! The sink's background task: groups events per (tenant, region), seals
//! them into numbered batches of each tenant's chain, stores them in order
//! with retries, and answers flushes and durable records.

use super::*;

/// Events of one (tenant, region) not yet in a batch.
struct OpenGroup {
    events: Vec<Entry>,
    /// When the group must be stored: its first event's arrival + max_age.
    deadline: Instant,
    /// Durable records waiting: sealed at this time (first one's arrival +
    /// commit window) once the tenant's chain is idle.
    commit_at: Option<Instant>,
    acks: Vec<AckTx>,
}

/// A numbered, hashed batch: its bytes never change, so retries cannot fork
/// the chain.
struct SealedBatch {
    tenant: String,
    region: String,
    seq: u64,
    key: String,
    sha256: String,
    bytes: Bytes,
    events: usize,
}

/// One tenant's chain for this writer.
struct Chain {
    /// Which of this writer's folders the chain is in: 0 is `<writer>/`,
    /// `n` is `<writer>.<n>/` (a chain started again after an idle one of
    /// the same tenant was closed to bound memory; see [`Worker::close_idle`]).
    epoch: u64,
    /// When a batch was last sealed into it.
    last_used: Instant,
    /// The seq the next sealed batch gets.
    next_seq: u64,
    /// The SHA-256 of the last sealed batch (empty before seq 0).
    link: HashChain,
    /// Sealed batches not stored yet, in seq order; the front is stored next.
    queue: VecDeque<Queued>,
    in_flight: bool,
    /// Consecutive failed stores of the front batch.
    attempts: u32,
    /// No store before this (backoff after a failure).
    retry_at: Option<Instant>,
    /// Regions holding stored batches of this chain (each keeps a HEAD).
    regions: BTreeSet<String>,
}

impl Chain {
    fn new(epoch: u64, now: Instant) -> Self {
        Chain {
            epoch,
            last_used: now,
            next_seq: 0,
            link: HashChain::default(),
            queue: VecDeque::new(),
            in_flight: false,
            attempts: 0,
            retry_at: None,
            regions: BTreeSet::new(),
        }
    }

    /// Every batch below this seq is stored.
    fn stored_below(&self) -> u64 {
        self.queue.front().map_or(self.next_seq, |q| q.batch.seq)
    }

    /// No batch being stored or waiting: a durable group may be sealed.
    fn idle(&self) -> bool {
        !self.in_flight && self.queue.is_empty()
    }
}

/// A sealed batch and the durable records waiting for it.
struct Queued {
    batch: Arc<SealedBatch>,
    acks: Vec<AckTx>,
}

/// A `flush` or `shutdown` call waiting for chains to be stored up to a seq.
struct Waiter {
    reply: Reply,
    targets: Vec<(String, u64)>,
    deadline: Instant,
}

pub(super) struct Worker {
    backends: HashMap<String, Arc<dyn Backend>>,
    writer: String,
    config: BatchConfig,
    /// Keyed by tenant, then store region (two levels, so that an event
    /// finds its group by `&str` without copying either name).
    open: BTreeMap<String, BTreeMap<String, OpenGroup>>,
    chains: BTreeMap<String, Chain>,
    /// The tenants whose chain has sealed batches not stored yet: the only
    /// chains the loop visits (the others are idle).
    queued: BTreeSet<String>,
    /// Sealed batches not stored yet, across chains.
    pending_batches: usize,
    /// The folder of the chains started now (see [`Chain::epoch`]).
    epoch: u64,
    /// Events buffered or sealed and not stored.
    buffered: usize,
    /// Dropping events for lack of room (logged once per episode).
    overflowing: bool,
    waiters: Vec<Waiter>,
    jobs: JoinSet<(String, Result<(), StoreError>)>,
    job_tenants: HashMap<tokio::task::Id, String>,
}

impl Worker {
    pub(super) fn new(
        backends: Vec<(String, Arc<dyn Backend>)>,
        writer: String,
        config: BatchConfig,
    ) -> Self {
        Worker {
            backends: backends.into_iter().collect(),
            writer,
            config,
            open: BTreeMap::new(),
            chains: BTreeMap::new(),
            queued: BTreeSet::new(),
            pending_batches: 0,
            epoch: 0,
            buffered: 0,
            overflowing: false,
            waiters: Vec::new(),
            jobs: JoinSet::new(),
            job_tenants: HashMap::new(),
        }
    }

    pub(super) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        let mut receiving = true;
        let mut shutdowns: Vec<Reply> = Vec::new();
        let mut closing_deadline: Option<Instant> = None;
        loop {
            let now = Instant::now();
            self.seal_due(now);
            self.start_stores(now);
            self.answer_waiters(now);
            if let Some(deadline) = closing_deadline {
                if (self.open.is_empty() && self.pending_batches() == 0) || now >= deadline {
                    break;
                }
            }
            let wake = self
                .next_wake(closing_deadline)
                .unwrap_or_else(|| now + Duration::from_secs(86_400));
            tokio::select! {
                cmd = rx.recv(), if receiving => match cmd {
                    Some(cmd) => {
                        // `now` above is from before the wait: read the clock
                        // again. Everything already queued is taken before
                        // sealing, so that concurrent records share a batch.
                        let now = Instant::now();
                        let mut next = Some(cmd);
                        let mut taken = 0;
                        while let Some(cmd) = next.take() {
                            match cmd {
                                Command::Event(e, ack) => self.add(e, ack, now),
                                Command::Flush(reply) => self.flush(reply, now),
                                Command::Shutdown(reply) => {
                                    // Takes what is already queued, then sees `None`.
                                    rx.close();
                                    shutdowns.push(reply);
                                }
                            }
                            taken += 1;
                            if taken < 4096 {
                                next = rx.try_recv().ok();
                            }
                        }
                    }
                    None => {
                        receiving = false;
                        self.seal_all();
                        self.retry_now();
                        closing_deadline = Some(Instant::now() + self.config.flush_timeout);
                    }
                },
                Some(done) = self.jobs.join_next_with_id(), if !self.jobs.is_empty() => {
                    let (tenant, result) = match done {
                        Ok((id, out)) => {
                            self.job_tenants.remove(&id);
                            out
                        }
                        Err(e) => {
                            let tenant = self.job_tenants.remove(&e.id()).unwrap_or_default();
                            (tenant, Err(StoreError::unavailable(format!("audit store task failed: {e}"))))
                        }
                    };
                    self.stored(tenant, result, Instant::now());
                    self.close_idle();
                }
                () = sleep_until(wake) => {}
            }
        }
        // Out of time (or done): whatever is left is lost.
        self.jobs.abort_all();
        let (batches, events) = self.pending();
        let result = if batches == 0 {
            Ok(())
        } else {
            tracing::error!(
                target: "residency::audit",
                batches,
                events,
                "audit sink stopped with batches not stored: their events are lost"
            );
            Err(AuditFlushError::Pending { batches, events })
        };
        for w in std::mem::take(&mut self.waiters) {
            let r = self.waiter_result(&w.targets);
            let _ = w.reply.send(r);
        }
        // Durable records still waiting: their writes fail (the senders are
        // dropped with the worker, which their acks read as "stopped").
        for reply in shutdowns {
            let _ = reply.send(result.clone());
        }
    }

    fn add(&mut self, event: Entry, ack: Option<AckTx>, now: Instant) {
        let refuse = |ack: Option<AckTx>, why: &'static str| {
            if let Some(ack) = ack {
                let _ = ack.send(Err(AuditError::Unavailable(why)));
            }
        };
        if !self.backends.contains_key(event.store_region()) {
            refuse(ack, "no backend for the record's region");
            dropped("unknown_region");
            tracing::error!(
                target: "residency::audit",
                tenant = %event.tenant(),
                region = %event.store_region(),
                request_id = %event.request_id(),
                "audit event for a region without a backend: dropped"
            );
            return;
        }
        if self.buffered >= self.config.max_buffered_events {
            refuse(ack, "the audit buffer is full (batches cannot be stored)");
            dropped("overflow");
            if !self.overflowing {
                self.overflowing = true;
                tracing::error!(
                    target: "residency::audit",
                    buffered = self.buffered,
                    "audit buffer full (batches cannot be stored): dropping new events"
                );
            }
            return;
        }
        self.buffered += 1;
        let deadline = now + self.config.max_age;
        let max_events = self.config.max_events.max(1);
        let (tenant, region) = (event.tenant(), event.store_region());
        if !self.open.contains_key(tenant) {
            self.open.insert(tenant.to_owned(), BTreeMap::new());
        }
        let regions = self.open.get_mut(tenant).expect("inserted above");
        if !regions.contains_key(region) {
            let group = OpenGroup {
                events: Vec::new(),
                deadline,
                commit_at: None,
                acks: Vec::new(),
            };
            regions.insert(region.to_owned(), group);
        }
        let group = regions.get_mut(region).expect("inserted above");
        group.events.push(event);
        if let Some(ack) = ack {
            group.acks.push(ack);
            group
                .commit_at
                .get_or_insert(now + self.config.commit_window);
        }
        if group.events.len() >= max_events {
            let last = group.events.last().expect("pushed above");
            let (tenant, region) = (last.tenant().to_owned(), last.store_region().to_owned());
            if let Some(group) = self.take_group(&tenant, &region) {
                self.seal(tenant, region, group);
            }
        }
    }

    /// Removes an open group (and its tenant's entry once empty).
    fn take_group(&mut self, tenant: &str, region: &str) -> Option<OpenGroup> {
        let regions = self.open.get_mut(tenant)?;
        let group = regions.remove(region);
        if regions.is_empty() {
            self.open.remove(tenant);
        }
        group
    }

    /// Open groups, across tenants.
    fn open_groups(&self) -> impl Iterator<Item = &OpenGroup> {
        self.open.values().flat_map(|r| r.values())
    }

    /// Numbers, encodes and hashes a group as the chain's next batch.
    fn seal(&mut self, tenant: String, region: String, group: OpenGroup) {
        let OpenGroup { events, acks, .. } = group;
        let tenant_key = tenant.clone();
        let now = Instant::now();
        let epoch = self.epoch;
        let chain = self
            .chains
            .entry(tenant.clone())
            .or_insert_with(|| Chain::new(epoch, now));
        chain.last_used = now;
        let writer = chain_writer(&self.writer, chain.epoch);
        let seq = chain.next_seq;
        let bytes = encode_batch(&tenant, &writer, seq, chain.link.head(), &events);
        let sha256 = chain.link.append(&bytes).to_owned();
        chain.next_seq += 1;
        let batch = Arc::new(SealedBatch {
            key: batch_key(&tenant, &writer, seq),
            tenant,
            region,
            seq,
            sha256,
            bytes: Bytes::from(bytes),
            events: events.len(),
        });
        chain.queue.push_back(Queued { batch, acks });
        self.pending_batches += 1;
        self.queued.insert(tenant_key);
        self.report_pending();
    }

    /// Seals the groups whose age is up and, in durable mode, the groups
    /// with waiting records whose tenant's chain is idle (group commit: one
    /// batch per tenant and region stored at a time, the next one gathers
    /// everything that arrived meanwhile).
    fn seal_due(&mut self, now: Instant) {
        let chains = &self.chains;
        let due: Vec<(String, String)> = self
            .open
            .iter()
            .flat_map(|(t, regions)| {
                let idle = chains.get(t).is_none_or(Chain::idle);
                regions
                    .iter()
                    .filter(move |(_, g)| {
                        g.deadline <= now || (idle && g.commit_at.is_some_and(|c| c <= now))
                    })
                    .map(move |(r, _)| (t.clone(), r.clone()))
            })
            .collect();
        for (tenant, region) in due {
            if let Some(group) = self.take_group(&tenant, &region) {
                self.seal(tenant, region, group);
            }
        }
    }

    fn seal_all(&mut self) {
        for (tenant, regions) in std::mem::take(&mut self.open) {
            for (region, group) in regions {
                self.seal(tenant.clone(), region, group);
            }
        }
    }

    /// Failed stores are retried now rather than after their backoff.
    fn retry_now(&mut self) {
        for tenant in &self.queued {
            if let Some(chain) = self.chains.get_mut(tenant) {
                chain.retry_at = None;
            }
        }
    }

    fn flush(&mut self, reply: Reply, now: Instant) {
        self.seal_all();
        self.retry_now();
        let targets: Vec<(String, u64)> = self
            .queued
            .iter()
            .filter_map(|t| self.chains.get(t).map(|c| (t.clone(), c.next_seq)))
            .collect();
        if targets.is_empty() {
            let _ = reply.send(Ok(()));
        } else {
            self.waiters.push(Waiter {
                reply,
                targets,
                deadline: now + self.config.flush_timeout,
            });
        }
    }

    /// Starts storing the front batch of every chain that is idle and not
    /// backing off. One store per chain at a time keeps the chain in order.
    fn start_stores(&mut self, now: Instant) {
        for tenant in &self.queued {
            let Some(chain) = self.chains.get_mut(tenant) else {
                continue;
            };
            if chain.in_flight || chain.retry_at.is_some_and(|t| t > now) {
                continue;
            }
            let Some(batch) = chain.queue.front().map(|q| q.batch.clone()) else {
                continue;
            };
            let Some(home) = self.backends.get(&batch.region).cloned() else {
                continue; // cannot happen: checked in `add`
            };
            let others: Vec<(String, Arc<dyn Backend>)> = chain
                .regions
                .iter()
                .filter(|r| **r != batch.region)
                .filter_map(|r| self.backends.get(r).map(|b| (r.clone(), b.clone())))
                .collect();
            let head = HeadRecord {
                seq: batch.seq,
                sha256: batch.sha256.clone(),
                region: batch.region.clone(),
            };
            let head_key = head_key(tenant, &chain_writer(&self.writer, chain.epoch));
            chain.in_flight = true;
            let t = tenant.clone();
            let handle = self.jobs.spawn(async move {
                let result = store(&batch, home.as_ref(), &others, &head_key, &head).await;
                (t, result)
            });
            self.job_tenants.insert(handle.id(), tenant.clone());
        }
    }

    /// A store finished.
    fn stored(&mut self, tenant: String, result: Result<(), StoreError>, now: Instant) {
        let Some(chain) = self.chains.get_mut(&tenant) else {
            return;
        };
        chain.in_flight = false;
        match result {
            Ok(()) => {
                if let Some(Queued { batch, acks }) = chain.queue.pop_front() {
                    self.buffered -= batch.events;
                    self.pending_batches -= 1;
                    metrics::counter!(AUDIT_BATCHES_TOTAL, "region" => batch.region.clone())
                        .increment(1);
                    metrics::histogram!(AUDIT_BATCH_EVENTS, "region" => batch.region.clone())
                        .record(batch.events as f64);
                    chain.regions.insert(batch.region.clone());
                    for ack in acks {
                        let _ = ack.send(Ok(()));
                    }
                }
                chain.attempts = 0;
                chain.retry_at = None;
                if chain.queue.is_empty() {
                    self.queued.remove(&tenant);
                }
                if self.overflowing && self.buffered < self.config.max_buffered_events {
                    self.overflowing = false;
                    tracing::warn!(target: "residency::audit", "audit buffer has room again");
                }
            }
            Err(error) => {
                chain.attempts = chain.attempts.saturating_add(1);
                let backoff = self
                    .config
                    .retry_min_backoff
                    .saturating_mul(1u32 << (chain.attempts - 1).min(20))
                    .min(self.config.retry_max_backoff);
                chain.retry_at = Some(now + backoff);
                if let Some(Queued { batch, .. }) = chain.queue.front() {
                    metrics::counter!(AUDIT_WRITE_ERRORS_TOTAL, "region" => batch.region.clone())
                        .increment(1);
                    tracing::error!(
                        target: "residency::audit",
                        tenant = %tenant,
                        region = %batch.region,
                        seq = batch.seq,
                        attempt = chain.attempts,
                        retry_in_ms = backoff.as_millis() as u64,
                        error = %error,
                        "audit batch not stored: kept in memory, retrying"
                    );
                }
            }
        }
        self.report_pending();
    }

    fn answer_waiters(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.waiters.len() {
            let done = self.waiters[i]
                .targets
                .iter()
                .all(|(t, seq)| self.chains.get(t).is_some_and(|c| c.stored_below() >= *seq));
            if done || self.waiters[i].deadline <= now {
                let w = self.waiters.swap_remove(i);
                let r = self.waiter_result(&w.targets);
                let _ = w.reply.send(r);
            } else {
                i += 1;
            }
        }
    }

    /// `Ok` when every target is stored, else what is missing.
    fn waiter_result(&self, targets: &[(String, u64)]) -> Result<(), AuditFlushError> {
        let (mut batches, mut events) = (0, 0);
        for (tenant, seq) in targets {
            if let Some(chain) = self.chains.get(tenant) {
                for b in chain
                    .queue
                    .iter()
                    .map(|q| &q.batch)
                    .take_while(|b| b.seq < *seq)
                {
                    batches += 1;
                    events += b.events;
                }
            }
        }
        if batches == 0 {
            Ok(())
        } else {
            Err(AuditFlushError::Pending { batches, events })
        }
    }

    fn next_wake(&self, closing: Option<Instant>) -> Option<Instant> {
        // A durable group's commit time counts only while its chain is idle
        // (else the store in flight wakes the loop when it ends).
        let groups = self.open.iter().flat_map(|(t, regions)| {
            let idle = self.chains.get(t).is_none_or(Chain::idle);
            regions.values().map(move |g| match g.commit_at {
                Some(c) if idle => c.min(g.deadline),
                _ => g.deadline,
            })
        });
        let retries = self
            .queued
            .iter()
            .filter_map(|t| self.chains.get(t))
            .filter(|c| !c.in_flight && !c.queue.is_empty())
            .filter_map(|c| c.retry_at);
        let waiters = self.waiters.iter().map(|w| w.deadline);
        groups.chain(retries).chain(waiters).chain(closing).min()
    }

    fn pending_batches(&self) -> usize {
        self.pending_batches
    }

    /// Bounds memory: past [`BatchConfig::max_chains`] chains, closes the
    /// least recently used idle ones (every batch stored, no event waiting)
    /// down to three quarters of it. A closed chain is complete as stored
    /// (its HEAD names its last batch); the tenant's next batch starts a new
    /// chain in the next folder, `<writer>.<epoch>/`, as a restarted writer
    /// would. Not while a flush waits (it names chains by seq).
    fn close_idle(&mut self) {
        let max = self.config.max_chains.max(1);
        if self.chains.len() <= max || !self.waiters.is_empty() {
            return;
        }
        let mut idle: Vec<(Instant, &String)> = self
            .chains
            .iter()
            .filter(|(t, c)| c.idle() && !self.open.contains_key(*t))
            .map(|(t, c)| (c.last_used, t))
            .collect();
        let excess = self.chains.len() - max * 3 / 4;
        if idle.is_empty() {
            return;
        }
        idle.sort_unstable();
        let closing: Vec<String> = idle
            .into_iter()
            .take(excess)
            .map(|(_, t)| t.clone())
            .collect();
        for t in &closing {
            self.chains.remove(t);
        }
        self.epoch += 1;
        metrics::counter!(AUDIT_CHAINS_CLOSED_TOTAL).increment(closing.len() as u64);
        tracing::debug!(
            target: "residency::audit",
            closed = closing.len(),
            open = self.chains.len(),
            epoch = self.epoch,
            "idle audit chains closed (memory bound); their tenants' next batches start new chains"
        );
    }

    /// Unstored batches and their events, plus events not yet in a batch.
    fn pending(&self) -> (usize, usize) {
        let batches = self.pending_batches() + self.open_groups().count();
        (batches, self.buffered)
    }

    fn report_pending(&self) {
        metrics::gauge!(AUDIT_PENDING_BATCHES).set(self.pending_batches() as f64);
    }
}

/// Stores one batch, then its chain's HEAD: in the batch's region (must
/// succeed; retried with the batch), then in the chain's other regions
/// (best-effort: the next batch rewrites them).
async fn store(
    batch: &SealedBatch,
    home: &dyn Backend,
    others: &[(String, Arc<dyn Backend>)],
    head_key: &str,
    head: &HeadRecord,
) -> Result<(), StoreError> {
    home.put_object(
        &batch.key,
        Body::from_bytes(batch.bytes.clone()),
        PutMeta::with_content_type("application/x-ndjson"),
    )
    .await?;
    let head = Bytes::from(serde_json::to_vec(head).expect("head serializes"));
    put_head(home, head_key, &head).await?;
    for (region, backend) in others {
        if let Err(error) = put_head(backend.as_ref(), head_key, &head).await {
            tracing::warn!(
                target: "residency::audit",
                tenant = %batch.tenant,
                region = %region,
                seq = batch.seq,
                error = %error,
                "audit HEAD not updated in this region (the next batch retries)"
            );
        }
    }
    Ok(())
}

async fn put_head(backend: &dyn Backend, key: &str, head: &Bytes) -> Result<(), StoreError> {
    backend
        .put_object(
            key,
            Body::from_bytes(head.clone()),
            PutMeta::with_content_type("application/json"),
        )
        .await
        .map(drop)
}
