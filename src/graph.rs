//! The runner: a recorded list of dispatches over storage buffers, replayed with one submit.
//!
//! Ops record into a [`Graph`] once (pipelines, uniforms and bind groups are made then); a step
//! only rewrites small per-step buffers (token ids, positions) and calls [`Graph::run`].

use crate::gpu::{GpuContext, Kernel};
use std::sync::Arc;

/// One recorded compute dispatch.
pub struct Dispatch {
    /// Kernel name (for profiles).
    pub label: &'static str,
    pipeline: Arc<Kernel>,
    bind_group: wgpu::BindGroup,
    workgroups: [u32; 3],
    /// Bytes of weights it streams (for GB/s in profiles; 0 when not noted).
    pub bytes: u64,
}

/// One step of a graph.
pub enum Step {
    /// A compute dispatch.
    Dispatch(Dispatch),
    /// A buffer-to-buffer copy (e.g. gathering the rows that need logits).
    Copy {
        /// Source buffer.
        src: wgpu::Buffer,
        /// Byte offset in the source.
        src_offset: u64,
        /// Destination buffer.
        dst: wgpu::Buffer,
        /// Byte offset in the destination.
        dst_offset: u64,
        /// Bytes to copy (a multiple of 4).
        size: u64,
    },
}

/// A recorded sequence of dispatches and copies.
#[derive(Default)]
pub struct Graph {
    /// The steps, in execution order.
    pub steps: Vec<Step>,
    /// Bytes of the uniform buffers the recorded ops created (for the memory ledger).
    pub uniform_bytes: u64,
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a dispatch of `pipeline` with `buffers` bound whole at bindings 0, 1, 2, ... (those
    /// its shader uses)
    pub fn push(
        &mut self,
        ctx: &GpuContext,
        label: &'static str,
        pipeline: &Arc<Kernel>,
        buffers: &[&wgpu::Buffer],
        workgroups: [u32; 3],
    ) {
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .filter(|&(i, _)| pipeline.bindings >> i & 1 == 1)
            .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() })
            .collect();
        self.uniform_bytes +=
            buffers.iter().filter(|b| b.usage().contains(wgpu::BufferUsages::UNIFORM)).map(|b| b.size()).sum::<u64>();
        let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &pipeline.pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        self.steps.push(Step::Dispatch(Dispatch {
            label,
            pipeline: pipeline.clone(),
            bind_group,
            workgroups,
            bytes: 0,
        }));
    }

    /// Notes the bytes of weights the last recorded dispatch streams (for profiles).
    pub fn note_bytes(&mut self, bytes: u64) {
        if let Some(Step::Dispatch(d)) = self.steps.last_mut() {
            d.bytes = bytes;
        }
    }

    /// Records a copy of `size` bytes between buffers.
    pub fn copy(&mut self, src: &wgpu::Buffer, src_offset: u64, dst: &wgpu::Buffer, dst_offset: u64, size: u64) {
        self.steps.push(Step::Copy { src: src.clone(), src_offset, dst: dst.clone(), dst_offset, size });
    }

    /// The recorded dispatches, in order.
    pub fn dispatches(&self) -> impl Iterator<Item = &Dispatch> {
        self.steps.iter().filter_map(|s| match s {
            Step::Dispatch(d) => Some(d),
            Step::Copy { .. } => None,
        })
    }

    /// Appends the graph to `enc`: runs of dispatches share one compute pass.
    pub fn encode(&self, enc: &mut wgpu::CommandEncoder) {
        self.encode_steps(enc, None);
    }

    /// Encodes the steps; with `timestamps = (query set, n)` each of the first `n` dispatches gets
    /// a pass of its own with a timestamp at its start (query 2k) and end (2k + 1).
    fn encode_steps(&self, enc: &mut wgpu::CommandEncoder, timestamps: Option<(&wgpu::QuerySet, u32)>) {
        let (mut i, mut k) = (0, 0u32);
        while i < self.steps.len() {
            if let Step::Copy { src, src_offset, dst, dst_offset, size } = &self.steps[i] {
                enc.copy_buffer_to_buffer(src, *src_offset, dst, *dst_offset, *size);
                i += 1;
                continue;
            }
            let writes = timestamps.filter(|&(_, n)| k < n).map(|(query_set, _)| wgpu::ComputePassTimestampWrites {
                query_set,
                beginning_of_pass_write_index: Some(2 * k),
                end_of_pass_write_index: Some(2 * k + 1),
            });
            let timed = writes.is_some();
            let mut pass =
                enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("graph"), timestamp_writes: writes });
            while let Some(Step::Dispatch(d)) = self.steps.get(i) {
                pass.set_pipeline(&d.pipeline.pipeline);
                pass.set_bind_group(0, &d.bind_group, &[]);
                let [x, y, z] = d.workgroups;
                pass.dispatch_workgroups(x, y, z);
                i += 1;
                k += 1;
                if timed {
                    break;
                }
            }
        }
    }

    /// Encodes the whole graph and submits it (one submit).
    pub fn run(&self, ctx: &GpuContext) -> wgpu::SubmissionIndex {
        let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("graph") });
        self.encode(&mut enc);
        ctx.queue.submit([enc.finish()])
    }
}

/// GPU time of one dispatch, from timestamp queries.
#[derive(Clone, Debug)]
pub struct ProfileEntry {
    /// Kernel name.
    pub label: &'static str,
    /// GPU nanoseconds.
    pub ns: f64,
    /// Weight bytes it streams.
    pub bytes: u64,
}

impl Graph {
    /// Runs the graph once with a timestamp around every dispatch (each in its own pass, so the
    /// sum is a little above a normal run) and returns the GPU time of each. Needs the adapter's
    /// `TIMESTAMP_QUERY`; times the first 2048 dispatches (the rest run untimed).
    pub async fn profile(&self, ctx: &GpuContext) -> crate::Result<Vec<ProfileEntry>> {
        if !ctx.features.contains(wgpu::Features::TIMESTAMP_QUERY) {
            return Err(crate::Error::Invalid(format!("{} has no timestamp queries", ctx.info.name)));
        }
        let dispatches: Vec<&Dispatch> = self.dispatches().take(2048).collect();
        let n = dispatches.len() as u32;
        let qs = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("profile"),
            ty: wgpu::QueryType::Timestamp,
            count: 2 * n.max(1),
        });
        let bytes = 16 * n.max(1) as u64;
        let resolve = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("profile resolve"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let staging = ctx.staging("profile readback", bytes);
        let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("profile") });
        self.encode_steps(&mut enc, Some((&qs, n)));
        enc.resolve_query_set(&qs, 0..2 * n, &resolve, 0);
        enc.copy_buffer_to_buffer(&resolve, 0, &staging, 0, bytes);
        let done = ctx.queue.submit([enc.finish()]);
        let raw = ctx.map_read(&staging, bytes, Some(done)).await?;
        let ticks: &[u64] = bytemuck::cast_slice(&raw);
        let period = ctx.queue.get_timestamp_period() as f64;
        Ok(dispatches
            .iter()
            .enumerate()
            .map(|(k, d)| ProfileEntry {
                label: d.label,
                ns: ticks[2 * k + 1].saturating_sub(ticks[2 * k]) as f64 * period,
                bytes: d.bytes,
            })
            .collect())
    }
}
