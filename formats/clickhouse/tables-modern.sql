-- msen's ClickHouse tables for 23.x and newer (DateTime64(9), LowCardinality, codecs; a TTL on request).
-- Generated from src/export/table.rs; `msen export --clickhouse URL --create-tables` runs it.

-- ms_stack_traces: one row per distinct call chain of a capture.
-- Looked up by (capture_id, stack_id) from ms_raw_samples; partitioned like the samples so a capture
-- ages out as one.
CREATE TABLE IF NOT EXISTS ms_stack_traces
(
    capture_id   LowCardinality(String),  -- the capture (a UUID in the trace's metadata)
    host         LowCardinality(String),  -- the recording machine's host name
    capture_date Date,  -- the capture's start date (UTC): the partition key
    stack_id     UInt64 CODEC(ZSTD(1)),  -- XXH3 of the resolved frames: stable across runs of the export
    depth        UInt16,  -- number of frames
    ips          Array(UInt64) CODEC(ZSTD(1)),  -- frame addresses, the sampled one first
    symbols      Array(LowCardinality(String)),  -- function per frame
    dsos         Array(LowCardinality(String)),  -- object per frame
    build_ids    Array(LowCardinality(String))  -- build-id per frame ('' unknown)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(capture_date)
ORDER BY (capture_id, stack_id)
-- TTL capture_date + INTERVAL 90 DAY  (msen export --create-tables --ttl-days 90)
;

-- ms_flows: the flow table of a capture: 5-tuple, namespace, counters.
-- Joined with ms_raw_samples and ms_flow_rollup on (capture_id, flow_id).
CREATE TABLE IF NOT EXISTS ms_flows
(
    capture_id   LowCardinality(String),  -- the capture (a UUID in the trace's metadata)
    host         LowCardinality(String),  -- the recording machine's host name
    capture_date Date,  -- the capture's start date (UTC): the partition key
    flow_id      UInt64 CODEC(ZSTD(1)),  -- the flow's id in this capture
    proto        LowCardinality(String),  -- tcp or udp
    family       UInt8,  -- 4 or 6
    local_addr   LowCardinality(String),  -- local address
    local_port   UInt16,  -- local port
    remote_addr  LowCardinality(String),  -- remote address
    remote_port  UInt16,  -- remote port
    direction    LowCardinality(String),  -- client, server or ''
    netns        UInt32,  -- network namespace inode
    ifindex      UInt32,  -- interface index
    flow         String CODEC(ZSTD(1)),  -- the flow as msen flows prints it
    first_seen   DateTime64(9) CODEC(Delta, ZSTD(1)),  -- first time the hooks saw it
    last_seen    DateTime64(9) CODEC(Delta, ZSTD(1)),  -- last time
    rx_bytes     UInt64 CODEC(ZSTD(1)),  -- payload bytes received
    tx_bytes     UInt64 CODEC(ZSTD(1)),  -- payload bytes sent
    retransmits  UInt64 CODEC(ZSTD(1)),  -- TCP retransmits
    srtt_us      UInt32,  -- smoothed RTT in microseconds (0: never seen)
    samples      UInt64 CODEC(ZSTD(1))  -- samples tagged with the flow
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(capture_date)
ORDER BY (capture_id, flow_id)
-- TTL capture_date + INTERVAL 90 DAY  (msen export --create-tables --ttl-days 90)
;

-- ms_data_objects: data objects the memory samples touched: address range, type and access counts.
-- Joined with ms_raw_samples on capture_id, pid and data_symbol = object; small.
CREATE TABLE IF NOT EXISTS ms_data_objects
(
    capture_id   LowCardinality(String),  -- the capture (a UUID in the trace's metadata)
    host         LowCardinality(String),  -- the recording machine's host name
    capture_date Date,  -- the capture's start date (UTC): the partition key
    pid          UInt32,  -- process whose address space holds it
    object       LowCardinality(String),  -- the data object (symbol, registered object, or mapping)
    type_name    LowCardinality(String),  -- its type, for registered objects
    start        UInt64 CODEC(ZSTD(1)),  -- lowest sampled address of the object
    end          UInt64 CODEC(ZSTD(1)),  -- one past the highest sampled address
    samples      UInt64 CODEC(ZSTD(1)),  -- memory samples in it
    loads        UInt64 CODEC(ZSTD(1)),  -- loads
    stores       UInt64 CODEC(ZSTD(1))  -- stores
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(capture_date)
ORDER BY (capture_id, pid, object)
-- TTL capture_date + INTERVAL 90 DAY  (msen export --create-tables --ttl-days 90)
;

-- ms_flow_rollup: per second, flow, function and event: samples, period and memory-level counts (additive: sum over rows).
-- Dashboards ask per host and flow over time; the rows are additive, so a window split across two
-- export batches sums correctly.
CREATE TABLE IF NOT EXISTS ms_flow_rollup
(
    capture_id   LowCardinality(String),  -- the capture (a UUID in the trace's metadata)
    host         LowCardinality(String),  -- the recording machine's host name
    capture_date Date,  -- the capture's start date (UTC): the partition key
    trace_block  UInt32,  -- the first trace block of the export batch the row summarises
    window_start DateTime64(9) CODEC(Delta, ZSTD(1)),  -- the one-second window's start
    flow_id      UInt64 CODEC(ZSTD(1)),  -- ms_flows.flow_id, 0 for samples without a flow
    symbol       LowCardinality(String),  -- sampled function
    dso          LowCardinality(String),  -- sampled object
    event        LowCardinality(String),  -- event name
    samples      UInt64 CODEC(ZSTD(1)),  -- samples in the window
    period       UInt64 CODEC(ZSTD(1)),  -- sum of their periods
    l1_hits      UInt64 CODEC(ZSTD(1)),  -- memory samples served by L1 or the fill buffer
    llc_hits     UInt64 CODEC(ZSTD(1)),  -- served by L2 or the LLC
    dram_local   UInt64 CODEC(ZSTD(1)),  -- msen numa's local memory accesses
    dram_remote  UInt64 CODEC(ZSTD(1)),  -- msen numa's remote memory accesses
    hitm         UInt64 CODEC(ZSTD(1))  -- HITM loads
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(capture_date)
ORDER BY (host, flow_id, symbol, window_start)
-- TTL capture_date + INTERVAL 90 DAY  (msen export --create-tables --ttl-days 90)
;

-- ms_raw_samples: one row per sample, symbolized, with flow and decoded memory fields.
-- One capture is one partition (capture_date is constant within it), so every INSERT of a capture's
-- batch is one part: atomic, never half there. Fleet queries filter by host and capture and aggregate
-- by symbol, flow or line; ORDER BY (host, capture_id, trace_block) keeps a capture's rows together
-- for those scans and makes the exporter's resume check (rows per trace_block of one capture) read one
-- narrow range.
CREATE TABLE IF NOT EXISTS ms_raw_samples
(
    capture_id   LowCardinality(String),  -- the capture (a UUID in the trace's metadata)
    host         LowCardinality(String),  -- the recording machine's host name
    capture_date Date,  -- the capture's start date (UTC): the partition key
    trace_block  UInt32,  -- the trace block the sample came from (the unit of exactly-once resume)
    time         DateTime64(9) CODEC(Delta, ZSTD(1)),  -- wall-clock time: the trace clock mapped through the capture's recorded start
    cpu          UInt32,  -- CPU the sample was taken on
    pid          UInt32,  -- process id
    tid          UInt32,  -- thread id
    comm         LowCardinality(String),  -- the thread's command name at the sample's time
    event        LowCardinality(String),  -- event name (cpu-clock, mem-loads, ...)
    period       UInt64 CODEC(ZSTD(1)),  -- the sample's period (event count it stands for)
    ip           UInt64 CODEC(ZSTD(1)),  -- the sampled instruction address
    kernel       UInt8,  -- 1 when the sample is in kernel mode
    symbol       LowCardinality(String),  -- the sampled function (as msen report's Symbol, without the [.] mark)
    dso          LowCardinality(String),  -- the sampled object's short name (perf's Shared Object)
    stack_id     UInt64 CODEC(ZSTD(1)),  -- the call chain: ms_stack_traces.stack_id, 0 without one
    flow_id      UInt64 CODEC(ZSTD(1)),  -- the network flow the CPU was serving: ms_flows.flow_id, 0 for none
    data_addr    UInt64 CODEC(ZSTD(1)),  -- data address (memory samples), 0 when none
    data_src     UInt64 CODEC(ZSTD(1)),  -- the raw perf_mem_data_src
    mem_op       LowCardinality(String),  -- data_src's operation: LOAD, STORE, ... ('' without data_src)
    mem_level    LowCardinality(String),  -- where the access was served, in perf's words (L1 hit, RAM hit, ...)
    mem_snoop    LowCardinality(String),  -- snoop result (HitM, Hit, Miss, ...)
    mem_tlb      LowCardinality(String),  -- TLB result
    mem_locked   UInt8,  -- 1 for a locked access
    weight       UInt64 CODEC(ZSTD(1)),  -- access latency in cycles (memory samples)
    phys_addr    UInt64 CODEC(ZSTD(1)),  -- physical data address, 0 when not recorded
    data_symbol  LowCardinality(String),  -- the data object the address is in (as msen false-share names it)
    line_object  LowCardinality(String),  -- the cache line's owner: data mapping, '[kernel]', or '' (no mapping)
    line_pid     UInt32,  -- the pid owning a private anonymous line, else 0xFFFFFFFF
    line_addr    UInt64 CODEC(ZSTD(1)),  -- the line's map-relative address (msen false-share's line identity)
    line_offset  UInt32,  -- the access's offset in its cache line
    c2c_lcl_hitm UInt8,  -- perf c2c's counters of this one sample: local HITM
    c2c_rmt_hitm UInt8,  -- remote HITM
    c2c_tot_hitm UInt8,  -- local + remote HITM
    c2c_records  UInt8,  -- counted in c2c's Total records (loads and stores that classify)
    c2c_stores   UInt8,  -- counted as a store
    numa_access  LowCardinality(String),  -- 'local' or 'remote' memory access (msen numa's rule), '' otherwise
    cpu_node     UInt32,  -- NUMA node of the CPU, 0xFFFFFFFF unknown
    mem_node     UInt32,  -- NUMA node of the physical address, 0xFFFFFFFF unknown
    mode         LowCardinality(String)  -- the agent's mode when sampled ('' for plain captures)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(capture_date)
ORDER BY (host, capture_id, trace_block, time)
-- TTL capture_date + INTERVAL 90 DAY  (msen export --create-tables --ttl-days 90)
;

-- ms_captures: one row per exported capture, written last: its presence means every other table holds the whole capture.
-- The exporter's first resume check (is this capture complete?) and the fleet's list of captures by
-- host.
CREATE TABLE IF NOT EXISTS ms_captures
(
    capture_id      LowCardinality(String),  -- the capture (a UUID in the trace's metadata)
    host            LowCardinality(String),  -- the recording machine's host name
    capture_date    Date,  -- the capture's start date (UTC): the partition key
    start_time      DateTime64(9) CODEC(Delta, ZSTD(1)),  -- wall-clock start of the capture
    duration_ns     UInt64 CODEC(ZSTD(1)),  -- first to last sample
    kernel_release  LowCardinality(String),  -- uname -r of the recording machine
    arch            LowCardinality(String),  -- architecture
    cpu_vendor      LowCardinality(String),  -- CPU vendor
    cpu_model       LowCardinality(String),  -- CPU model
    nr_cpus         UInt32,  -- CPUs
    numa_nodes      UInt32,  -- NUMA nodes
    cache_line_size UInt32,  -- cache-line size in bytes
    events          Array(LowCardinality(String)),  -- recorded events
    software_only   UInt8,  -- 1 when the host had no usable hardware PMU
    source_format   LowCardinality(String),  -- msen, or perf.data for imports
    msen_version    LowCardinality(String),  -- msen that exported it
    samples         UInt64 CODEC(ZSTD(1)),  -- ms_raw_samples rows of the capture
    stacks          UInt64 CODEC(ZSTD(1)),  -- ms_stack_traces rows
    rollups         UInt64 CODEC(ZSTD(1)),  -- ms_flow_rollup rows
    flows           UInt64 CODEC(ZSTD(1)),  -- ms_flows rows
    objects         UInt64 CODEC(ZSTD(1)),  -- ms_data_objects rows
    lost            UInt64 CODEC(ZSTD(1)),  -- events the kernel lost (ring buffer overruns)
    dropped         UInt64 CODEC(ZSTD(1)),  -- samples dropped by msen's in-kernel budget
    command_line    String CODEC(ZSTD(1)),  -- the recording command
    trace_path      String CODEC(ZSTD(1))  -- the file the capture was exported from
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(capture_date)
ORDER BY (host, capture_id)
-- TTL capture_date + INTERVAL 90 DAY  (msen export --create-tables --ttl-days 90)
;

