//! The runner: a recorded list of dispatches over storage buffers, replayed with one submit.
//!
//! Ops record into a [`Graph`] once (pipelines, uniforms and bind groups are made then); a step
//! only rewrites small per-step buffers (token ids, positions) and calls [`Graph::run`].

use crate::gpu::GpuContext;
use std::sync::Arc;

/// One recorded compute dispatch.
pub struct Dispatch {
    /// Kernel name (for profiles).
    pub label: &'static str,
    pipeline: Arc<wgpu::ComputePipeline>,
    bind_group: wgpu::BindGroup,
    workgroups: [u32; 3],
}

/// A recorded sequence of dispatches.
#[derive(Default)]
pub struct Graph {
    /// The dispatches, in execution order.
    pub dispatches: Vec<Dispatch>,
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a dispatch of `pipeline` with `buffers` bound whole at bindings 0, 1, 2, ...
    pub fn push(
        &mut self,
        ctx: &GpuContext,
        label: &'static str,
        pipeline: &Arc<wgpu::ComputePipeline>,
        buffers: &[&wgpu::Buffer],
        workgroups: [u32; 3],
    ) {
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        self.dispatches.push(Dispatch {
            label,
            pipeline: pipeline.clone(),
            bind_group,
            workgroups,
        });
    }

    /// Appends every dispatch to a compute pass.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        for d in &self.dispatches {
            pass.set_pipeline(&d.pipeline);
            pass.set_bind_group(0, &d.bind_group, &[]);
            let [x, y, z] = d.workgroups;
            pass.dispatch_workgroups(x, y, z);
        }
    }

    /// Encodes the whole graph in one compute pass and submits it.
    pub fn run(&self, ctx: &GpuContext) -> wgpu::SubmissionIndex {
        let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("graph"),
        });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("graph"),
                timestamp_writes: None,
            });
            self.encode(&mut pass);
        }
        ctx.queue.submit([enc.finish()])
    }
}
