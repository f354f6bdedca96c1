"""What every layer of asc_kd uses: user errors and the command line that reports them in one
line, atomic files, folder locks between processes, objects named by import path, quiet
third-party output, the batch type and the allocator set-up."""
