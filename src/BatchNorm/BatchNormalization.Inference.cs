using System;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Threading;
using BatchNorm.Kernels;

namespace BatchNorm;

/// <content>Inference mode's folded coefficients, computed once per set of weights.</content>
public partial class BatchNormalization<T>
{
    private InferenceFold? _inferenceFold;

    /// <summary>
    /// The inference coefficients for the current weights. The last fold is kept with a copy of the weights it came from and
    /// reused while they are bitwise equal (weights are live arrays a training loop writes to, so equality is checked on
    /// every call: 4 C values compared, instead of a double-precision square root and division per channel). The snapshot
    /// is immutable and published by reference, so concurrent inference calls stay safe.
    /// </summary>
    private InferenceFold CurrentInferenceFold()
    {
        InferenceFold? fold = Volatile.Read(ref _inferenceFold);
        return fold is not null && fold.IsCurrent() ? fold : Refold();
    }

    /// <summary>Folds the current weights and publishes the result (out of line: it runs once per set of weights).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private InferenceFold Refold()
    {
        // The weight arrays are created once, by Build (SetWeights copies into them), so the fold can keep them.
        var fold = new InferenceFold(
            _gamma?.GetUnderlyingArray() ?? [], _beta?.GetUnderlyingArray() ?? [], _movingMean!.GetUnderlyingArray(),
            _movingVariance!.GetUnderlyingArray(), Epsilon);
        Volatile.Write(ref _inferenceFold, fold);
        return fold;
    }

    /// <summary>
    /// One set of folded coefficients, with the live weight arrays it came from and a copy of what they held. Everything
    /// it reads on a call sits in one pinned array, each part on a cache line of its own: center, scale and shift for the
    /// map, then the copies of gamma, beta, moving mean and moving variance for <see cref="IsCurrent"/>.
    /// </summary>
    private sealed class InferenceFold
    {
        private readonly T[] _gamma;
        private readonly T[] _beta;
        private readonly T[] _movingMean;
        private readonly T[] _movingVariance;
        private readonly T[] _data;
        private readonly int _start;
        private readonly int _stride;
        private readonly int _channels;

        /// <summary>Folds the live weight arrays (empty for an absent gamma or beta), keeping them and a copy of them.</summary>
        public InferenceFold(T[] gamma, T[] beta, T[] movingMean, T[] movingVariance, double epsilon)
        {
            _gamma = gamma;
            _beta = beta;
            _movingMean = movingMean;
            _movingVariance = movingVariance;
            _channels = movingMean.Length;
            _stride = CacheLine.RoundUp<T>(_channels);

            // Pinned, so that a 64-byte boundary found now stays one: loops that read the coefficients a vector at a time
            // beside data streamed from memory then never load across two lines. [1024,2048] float32 inference (8 MiB,
            // rows one at a time) took 1.56-2.07x a copy with them off a line and 1.47-1.65x on one (fifteenth session).
            _data = GC.AllocateUninitializedArray<T>((7 * _stride) + CacheLine.Slack<T>(), pinned: true);
            _start = CacheLine.Skip<T>(_data);
            gamma.CopyTo(_data.AsSpan(Part(3), gamma.Length));
            beta.CopyTo(_data.AsSpan(Part(4), beta.Length));
            movingMean.CopyTo(_data.AsSpan(Part(5), _channels));
            movingVariance.CopyTo(_data.AsSpan(Part(6), _channels));
            BatchNormKernels.InferenceCoefficients(
                gamma, beta, movingMean, movingVariance, epsilon,
                _data.AsSpan(Part(0), _channels), _data.AsSpan(Part(1), _channels), _data.AsSpan(Part(2), _channels));
        }

        /// <summary>The map's <c>m</c>: the moving mean rounded to <typeparamref name="T"/>.</summary>
        public ReadOnlySpan<T> Center => _data.AsSpan(Part(0), _channels);

        /// <summary>The map's <c>a = gamma / sqrt(moving variance + epsilon)</c>.</summary>
        public ReadOnlySpan<T> Scale => _data.AsSpan(Part(1), _channels);

        /// <summary>The map's <c>b</c>, beta less the rounding of the centre times <c>a</c>.</summary>
        public ReadOnlySpan<T> Shift => _data.AsSpan(Part(2), _channels);

        /// <summary><see cref="Center"/>'s first element, for kernels that take references.</summary>
        public ref T CenterReference => ref At(0);

        /// <summary><see cref="Scale"/>'s first element.</summary>
        public ref T ScaleReference => ref At(1);

        /// <summary><see cref="Shift"/>'s first element.</summary>
        public ref T ShiftReference => ref At(2);

        /// <summary>Whether the live weights still hold, bit for bit (NaN payloads and signed zeros included), what this
        /// fold was made from.</summary>
        public bool IsCurrent() =>
            Same(6, _movingVariance) && Same(5, _movingMean) && Same(3, _gamma) && Same(4, _beta);

        private int Part(int index) => _start + (index * _stride);

        /// <summary>The first element of part <paramref name="index"/>, without a bounds check: the array was made to
        /// hold all seven parts from <c>_start</c>.</summary>
        private ref T At(int index) => ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_data), Part(index));

        /// <summary>
        /// Whether part <paramref name="index"/> and <paramref name="live"/> hold the same bytes. The part is as long as
        /// the live array by construction, so no lengths are compared. With 512-bit vectors: whole vectors, the last one
        /// moved back to end at the last byte (overlapping), which took a float32 [8,16] inference to 0.93-0.99 of its
        /// time with <see cref="MemoryExtensions.SequenceEqual{T}(ReadOnlySpan{T}, ReadOnlySpan{T})"/>; that otherwise.
        /// </summary>
        private bool Same(int index, T[] live)
        {
            ref byte saved = ref Unsafe.As<T, byte>(ref At(index));
            ref byte current = ref Unsafe.As<T, byte>(ref MemoryMarshal.GetArrayDataReference(live));
            nuint bytes = (nuint)live.Length * (nuint)Unsafe.SizeOf<T>();
            if (Vector512.IsHardwareAccelerated && bytes >= (nuint)Vector512<byte>.Count)
            {
                nuint last = bytes - (nuint)Vector512<byte>.Count;
                for (nuint i = 0; i < last; i += (nuint)Vector512<byte>.Count)
                {
                    if (Vector512.LoadUnsafe(ref saved, i) != Vector512.LoadUnsafe(ref current, i))
                    {
                        return false;
                    }
                }

                return Vector512.LoadUnsafe(ref saved, last) == Vector512.LoadUnsafe(ref current, last);
            }

            return MemoryMarshal.CreateReadOnlySpan(ref saved, (int)bytes).SequenceEqual(MemoryMarshal.CreateReadOnlySpan(ref current, (int)bytes));
        }
    }
}
