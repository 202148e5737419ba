using System;
using System.Runtime.InteropServices;
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
        ReadOnlySpan<T> gamma = GammaSpan;
        ReadOnlySpan<T> beta = BetaSpan;
        ReadOnlySpan<T> movingMean = _movingMean!.ReadOnlySpan;
        ReadOnlySpan<T> movingVariance = _movingVariance!.ReadOnlySpan;
        if (fold is not null && fold.Matches(gamma, beta, movingMean, movingVariance))
        {
            return fold;
        }

        fold = new InferenceFold(gamma, beta, movingMean, movingVariance, Epsilon);
        Volatile.Write(ref _inferenceFold, fold);
        return fold;
    }

    private sealed class InferenceFold
    {
        private readonly T[] _gamma;
        private readonly T[] _beta;
        private readonly T[] _movingMean;
        private readonly T[] _movingVariance;
        private readonly T[] _coefficients;
        private readonly int _start;
        private readonly int _stride;
        private readonly int _channels;

        public InferenceFold(ReadOnlySpan<T> gamma, ReadOnlySpan<T> beta, ReadOnlySpan<T> movingMean, ReadOnlySpan<T> movingVariance, double epsilon)
        {
            _gamma = gamma.ToArray();
            _beta = beta.ToArray();
            _movingMean = movingMean.ToArray();
            _movingVariance = movingVariance.ToArray();
            _channels = movingMean.Length;
            _stride = CacheLine.RoundUp<T>(_channels);

            // One pinned array (it never moves, so a 64-byte boundary found now stays one) holding the three coefficient
            // arrays, each starting on a line: loops that read them a vector at a time beside data streamed from memory
            // then never load across two lines. [1024,2048] float32 inference (8 MiB, rows one at a time) took 1.56-2.07x
            // a copy with them off a line and 1.47-1.65x on one (fifteenth session).
            _coefficients = GC.AllocateUninitializedArray<T>((3 * _stride) + CacheLine.Slack<T>(), pinned: true);
            _start = CacheLine.Skip<T>(_coefficients);
            BatchNormKernels.InferenceCoefficients(
                gamma, beta, movingMean, movingVariance, epsilon,
                _coefficients.AsSpan(_start, _channels), _coefficients.AsSpan(_start + _stride, _channels), _coefficients.AsSpan(_start + (2 * _stride), _channels));
        }

        public ReadOnlySpan<T> Center => _coefficients.AsSpan(_start, _channels);

        public ReadOnlySpan<T> Scale => _coefficients.AsSpan(_start + _stride, _channels);

        public ReadOnlySpan<T> Shift => _coefficients.AsSpan(_start + (2 * _stride), _channels);

        public bool Matches(ReadOnlySpan<T> gamma, ReadOnlySpan<T> beta, ReadOnlySpan<T> movingMean, ReadOnlySpan<T> movingVariance) =>
            Same(_movingVariance, movingVariance) && Same(_movingMean, movingMean) && Same(_gamma, gamma) && Same(_beta, beta);

        /// <summary>Bitwise equality (NaN payloads and signed zeros included).</summary>
        private static bool Same(ReadOnlySpan<T> saved, ReadOnlySpan<T> current) =>
            MemoryMarshal.AsBytes(saved).SequenceEqual(MemoryMarshal.AsBytes(current));
    }
}
