using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.InteropServices;

namespace BatchNorm.Benchmarks;

/// <summary>
/// oneDNN's batch normalization, float32, through its C API, for the alternating harness's <c>--peers</c> option: the
/// peer the performance issue quotes (oneDNN 2.6.3, Debian's <c>libdnnl2</c>; <c>apt-get install libdnnl2</c>). Nothing
/// else in the repository needs it, and the harness says so and goes on without it when the library is absent.
/// </summary>
/// <remarks>
/// The same work as the layer's call in each mode, on the layer's own input (and output gradient), into buffers of its
/// own:
/// <list type="bullet">
/// <item><description>inference: <c>forward_inference</c> with the layer's moving statistics (<c>use_global_stats</c>)
/// and its gamma and beta (<c>use_scale | use_shift</c>);</description></item>
/// <item><description>training forward: <c>forward_training</c> with gamma and beta, writing y and the batch mean and
/// variance (the layer also updates its moving statistics, a per-channel step);</description></item>
/// <item><description>backward: <c>backward</c> with gamma, from the batch statistics of one training call, writing dx,
/// dgamma and dbeta.</description></item>
/// </list>
/// Channels last is oneDNN's <c>nhwc</c> (<c>acdb</c>), a rank-2 [N, C] given as [N, C, 1, 1]; channel axis 1 of
/// rank 4 is <c>nchw</c>. oneDNN 2.6 has no float64 on the CPU. Its threads are OpenMP's: each instance is created,
/// and called, with one thread count (<c>omp_set_num_threads</c> before each). libgomp's threads spin for a while after
/// a call by default; <c>OMP_WAIT_POLICY=passive</c> stops that but made oneDNN on two threads no faster than on one
/// here (inference [256,1024] 3.8x a copy against 1.9x), so the harness leaves the default.
/// </remarks>
internal sealed unsafe partial class OneDnnBatchNorm : IDisposable
{
    private const string Library = "libdnnl.so.2";
    private const string OpenMp = "libgomp.so.1";

    // Values from oneDNN 2.6.3's dnnl_types.h.
    private const int Success = 0;
    private const int DataTypeF32 = 3;
    private const int TagA = 2, TagAbcd = 5, TagAcdb = 20;
    private const int EngineCpu = 1;
    private const uint StreamInOrder = 1;
    private const int PropForwardTraining = 64, PropForwardInference = 96, PropBackward = 128;
    private const uint UseGlobalStats = 0x1, UseScale = 0x8, UseShift = 0x10;
    private const int ArgSrc = 1, ArgDst = 17, ArgMean = 49, ArgVariance = 50, ArgScale = 51, ArgShift = 52;
    private const int ArgDiffSrc = 129, ArgDiffDst = 145, ArgDiffScale = 255, ArgDiffShift = 256;

    /// <summary>
    /// Room for one descriptor: <c>dnnl_memory_desc_t</c> takes 696 bytes and <c>dnnl_batch_normalization_desc_t</c>
    /// 3496 in 2.6.3; the harness only passes pointers to them.
    /// </summary>
    private const int DescriptorBytes = 8192;

    private readonly nint _engine;
    private readonly nint _stream;
    private readonly nint _forwardPd;
    private readonly nint _pd;
    private readonly nint _primitive;
    private readonly nint[] _memories;
    private readonly ExecArg* _args;
    private readonly int _argCount;
    private readonly GCHandle[] _pins;
    private readonly int _threads;
    private bool _disposed;

    /// <summary>Sets up <paramref name="mode"/> on <paramref name="x"/> (the layer's input, laid out as <paramref name="shape"/>).</summary>
    /// <param name="threads">OpenMP threads for every call.</param>
    /// <param name="shape">The case: its dimensions and channel axis.</param>
    /// <param name="mode"><c>inference</c>, <c>training</c> or <c>backward</c>.</param>
    /// <param name="epsilon">The layer's epsilon.</param>
    /// <param name="x">The input, shared with the layer (read only).</param>
    /// <param name="dy">The output gradient, shared with the layer (read only; backward only).</param>
    /// <param name="gamma">Per-channel scale.</param>
    /// <param name="beta">Per-channel shift.</param>
    /// <param name="movingMean">The statistics inference uses.</param>
    /// <param name="movingVariance">The statistics inference uses.</param>
    public OneDnnBatchNorm(
        int threads, ShapeCase shape, string mode, float epsilon, float[] x, float[] dy, float[] gamma, float[] beta, float[] movingMean, float[] movingVariance)
    {
        int[] dims = shape.Shape.Dimensions.ToArray();
        int rank = dims.Length;
        int axis = shape.Axis < 0 ? shape.Axis + rank : shape.Axis;
        int channels = dims[axis];
        long* nc = stackalloc long[12];
        int tag;
        if (rank == 2 && axis == 1)
        {
            // As (N, C, 1, 1) channels last: given as nc (ab), oneDNN 2.6 takes its reference ncsp loop, 100x slower
            // ([256,1024]: 1.9 ms against 18 us for a copy); its JIT kernel handles nhwc.
            nc[0] = dims[0];
            nc[1] = dims[1];
            nc[2] = 1;
            nc[3] = 1;
            rank = 4;
            tag = TagAcdb;
        }
        else if (rank == 4 && (axis == 1 || axis == 3))
        {
            // oneDNN's dimensions are always (N, C, H, W); the tag says where C sits in memory.
            nc[0] = dims[0];
            nc[1] = channels;
            nc[2] = axis == 1 ? dims[2] : dims[1];
            nc[3] = axis == 1 ? dims[3] : dims[2];
            tag = axis == 1 ? TagAbcd : TagAcdb;
        }
        else
        {
            throw new NotSupportedException($"oneDNN peer: no layout for {shape.Name}");
        }

        // The statistics (given for inference, written by oneDNN otherwise) and dgamma, dbeta: buffers oneDNN fills and
        // nothing reads; the pins keep them alive.
        Y = new float[x.Length];
        Dx = new float[x.Length];
        float[] mean = (float[])movingMean.Clone(), variance = (float[])movingVariance.Clone();
        float[] dgamma = new float[channels], dbeta = new float[channels];
        _pins = new[] { x, dy, gamma, beta, mean, variance, Y, Dx, dgamma, dbeta }.Select(a => GCHandle.Alloc(a, GCHandleType.Pinned)).ToArray();

        _threads = threads;
        omp_set_num_threads(threads);
        byte* descriptors = (byte*)NativeMemory.AllocZeroed(4 * DescriptorBytes);
        try
        {
            void* data = descriptors;
            void* perChannel = descriptors + DescriptorBytes;
            void* forward = descriptors + (2 * DescriptorBytes);
            void* backward = descriptors + (3 * DescriptorBytes);
            long channelDims = channels;
            Check(dnnl_engine_create(out _engine, EngineCpu, 0), "dnnl_engine_create");
            Check(dnnl_stream_create(out _stream, _engine, StreamInOrder), "dnnl_stream_create");
            Check(dnnl_memory_desc_init_by_tag(data, rank, nc, DataTypeF32, tag), "dnnl_memory_desc_init_by_tag");
            Check(dnnl_memory_desc_init_by_tag(perChannel, 1, &channelDims, DataTypeF32, TagA), "dnnl_memory_desc_init_by_tag");

            uint flags = UseScale | UseShift | (mode == "inference" ? UseGlobalStats : 0);
            int prop = mode == "inference" ? PropForwardInference : PropForwardTraining;
            Check(dnnl_batch_normalization_forward_desc_init(forward, prop, data, epsilon, flags), "dnnl_batch_normalization_forward_desc_init");
            Check(dnnl_primitive_desc_create(out _forwardPd, forward, 0, _engine, 0), "dnnl_primitive_desc_create (forward)");

            // Every memory object, destroyed with the layer; the arguments of the timed primitive.
            var memories = new List<nint>();
            var args = new List<ExecArg>();
            ExecArg Memory(int arg, void* desc, float[] array)
            {
                Check(dnnl_memory_create(out nint memory, desc, _engine, (void*)Marshal.UnsafeAddrOfPinnedArrayElement(array, 0)), "dnnl_memory_create");
                memories.Add(memory);
                return new ExecArg { Arg = arg, Memory = memory };
            }

            args.Add(Memory(ArgSrc, data, x));
            args.Add(Memory(ArgMean, perChannel, mean));
            args.Add(Memory(ArgVariance, perChannel, variance));
            args.Add(Memory(ArgScale, perChannel, gamma));
            ExecArg shift = Memory(ArgShift, perChannel, beta);
            ExecArg dst = Memory(ArgDst, data, Y);
            if (mode == "backward")
            {
                // One training call first: the batch statistics that oneDNN's backward reads (as the layer reads its own).
                Check(dnnl_primitive_create(out nint training, _forwardPd), "dnnl_primitive_create (forward)");
                ExecArg[] forwardArgs = [.. args, shift, dst];
                fixed (ExecArg* pa = forwardArgs)
                {
                    Check(dnnl_primitive_execute(training, _stream, forwardArgs.Length, pa), "dnnl_primitive_execute (forward)");
                }

                Check(dnnl_stream_wait(_stream), "dnnl_stream_wait");
                Check(dnnl_primitive_destroy(training), "dnnl_primitive_destroy");

                Check(dnnl_batch_normalization_backward_desc_init(backward, PropBackward, data, data, epsilon, UseScale | UseShift), "dnnl_batch_normalization_backward_desc_init");
                Check(dnnl_primitive_desc_create(out _pd, backward, 0, _engine, _forwardPd), "dnnl_primitive_desc_create (backward)");
                // oneDNN 2.6 rejects a backward with use_shift whose arguments lack the shift, though it does not read it.
                args.Add(shift);
                args.Add(Memory(ArgDiffDst, data, dy));
                args.Add(Memory(ArgDiffSrc, data, Dx));
                args.Add(Memory(ArgDiffScale, perChannel, dgamma));
                args.Add(Memory(ArgDiffShift, perChannel, dbeta));
            }
            else
            {
                _pd = _forwardPd;
                _forwardPd = 0;
                args.Add(shift);
                args.Add(dst);
            }

            Check(dnnl_primitive_create(out _primitive, _pd), "dnnl_primitive_create");
            _memories = [.. memories];
            _argCount = args.Count;
            _args = (ExecArg*)NativeMemory.Alloc((nuint)(_argCount * sizeof(ExecArg)));
            for (int i = 0; i < _argCount; i++)
            {
                _args[i] = args[i];
            }
        }
        finally
        {
            NativeMemory.Free(descriptors);
        }
    }

    /// <summary>oneDNN's output of the forward modes.</summary>
    public float[] Y { get; }

    /// <summary>oneDNN's dx (backward).</summary>
    public float[] Dx { get; }

    /// <summary>Whether oneDNN and OpenMP load; otherwise why not.</summary>
    public static bool IsAvailable(out string reason)
    {
        foreach (string name in new[] { Library, OpenMp })
        {
            if (!NativeLibrary.TryLoad(name, out nint handle))
            {
                reason = $"{name} does not load (on Debian: apt-get install libdnnl2)";
                return false;
            }

            NativeLibrary.Free(handle);
        }

        reason = "";
        return true;
    }

    /// <summary>One call, on the OpenMP threads the instance was made for.</summary>
    public void Run()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        omp_set_num_threads(_threads);
        Check(dnnl_primitive_execute(_primitive, _stream, _argCount, _args), "dnnl_primitive_execute");
        Check(dnnl_stream_wait(_stream), "dnnl_stream_wait");
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        dnnl_primitive_destroy(_primitive);
        foreach (nint memory in _memories)
        {
            dnnl_memory_destroy(memory);
        }

        dnnl_primitive_desc_destroy(_pd);
        if (_forwardPd != 0)
        {
            dnnl_primitive_desc_destroy(_forwardPd);
        }

        dnnl_stream_destroy(_stream);
        dnnl_engine_destroy(_engine);
        NativeMemory.Free(_args);
        foreach (GCHandle pin in _pins)
        {
            pin.Free();
        }
    }

    private static void Check(int status, string function)
    {
        if (status != Success)
        {
            throw new InvalidOperationException($"oneDNN: {function} returned status {status}");
        }
    }

    /// <summary><c>dnnl_exec_arg_t</c>: an argument index and a memory object.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct ExecArg
    {
        public int Arg;
        public nint Memory;
    }

    [LibraryImport(Library)]
    private static partial int dnnl_engine_create(out nint engine, int kind, nuint index);

    [LibraryImport(Library)]
    private static partial int dnnl_engine_destroy(nint engine);

    [LibraryImport(Library)]
    private static partial int dnnl_stream_create(out nint stream, nint engine, uint flags);

    [LibraryImport(Library)]
    private static partial int dnnl_stream_wait(nint stream);

    [LibraryImport(Library)]
    private static partial int dnnl_stream_destroy(nint stream);

    [LibraryImport(Library)]
    private static partial int dnnl_memory_desc_init_by_tag(void* memoryDesc, int ndims, long* dims, int dataType, int tag);

    [LibraryImport(Library)]
    private static partial int dnnl_memory_create(out nint memory, void* memoryDesc, nint engine, void* handle);

    [LibraryImport(Library)]
    private static partial int dnnl_memory_destroy(nint memory);

    [LibraryImport(Library)]
    private static partial int dnnl_batch_normalization_forward_desc_init(void* desc, int propKind, void* dataDesc, float epsilon, uint flags);

    [LibraryImport(Library)]
    private static partial int dnnl_batch_normalization_backward_desc_init(void* desc, int propKind, void* diffDataDesc, void* dataDesc, float epsilon, uint flags);

    [LibraryImport(Library)]
    private static partial int dnnl_primitive_desc_create(out nint primitiveDesc, void* opDesc, nint attr, nint engine, nint hintForward);

    [LibraryImport(Library)]
    private static partial int dnnl_primitive_desc_destroy(nint primitiveDesc);

    [LibraryImport(Library)]
    private static partial int dnnl_primitive_create(out nint primitive, nint primitiveDesc);

    [LibraryImport(Library)]
    private static partial int dnnl_primitive_destroy(nint primitive);

    [LibraryImport(Library)]
    private static partial int dnnl_primitive_execute(nint primitive, nint stream, int nargs, ExecArg* args);

    [LibraryImport(OpenMp)]
    private static partial void omp_set_num_threads(int threads);
}
