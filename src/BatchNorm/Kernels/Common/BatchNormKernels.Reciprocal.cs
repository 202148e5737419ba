using System;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace BatchNorm.Kernels;

internal static partial class BatchNormKernels
{
    /// <summary>
    /// <c>inverse[c] = 1 / sqrt(variance[c] + epsilon)</c> in double precision, several channels per instruction (the
    /// spans may be the same): the square root and the division are the costliest per-channel operations of every call.
    /// </summary>
    public static void InverseStddev(ReadOnlySpan<double> variance, double epsilon, Span<double> inverse)
    {
        var loop = new InverseStddevLoop(variance, epsilon, inverse);
        ChannelLoop.Run(ref loop);
    }

    /// <summary>The loop of <see cref="InverseStddev"/>.</summary>
    private readonly ref struct InverseStddevLoop(ReadOnlySpan<double> variance, double epsilon, Span<double> inverse) : IChannelLoop
    {
        private readonly ReadOnlySpan<double> _variance = variance;
        private readonly Span<double> _inverse = inverse;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public int Run<TVec, TOps>(int start)
            where TVec : struct
            where TOps : IVectorOps<TVec, double>
        {
            ref double v = ref MemoryMarshal.GetReference(_variance);
            ref double inv = ref MemoryMarshal.GetReference(_inverse);
            TVec one = TOps.Broadcast(1.0);
            TVec eps = TOps.Broadcast(epsilon);
            int c = start;
            for (; c <= _variance.Length - TOps.Count; c += TOps.Count)
            {
                TOps.Store(TOps.Divide(one, TOps.SquareRoot(TOps.Add(TOps.Load(ref v, (nuint)c), eps))), ref inv, (nuint)c);
            }

            return c;
        }
    }
}
