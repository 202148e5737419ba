using System;
using System.Numerics;
using System.Runtime.InteropServices;

namespace BatchNorm.Kernels;

internal static partial class BatchNormKernels
{
    /// <summary>
    /// <c>values[c] = 1 / sqrt(values[c] + epsilon)</c> in double precision, several channels per instruction: the
    /// square root and the division are the costliest per-channel operations of every call.
    /// </summary>
    public static void InverseStddev(Span<double> values, double epsilon)
    {
        ref double v = ref MemoryMarshal.GetReference(values);
        int c = 0;
        if (ChannelVector.IsHardwareAccelerated)
        {
            var eps = new Vector<double>(epsilon);
            for (; c <= values.Length - ChannelVector.Count; c += ChannelVector.Count)
            {
                InverseStddevVector(Vector.LoadUnsafe(ref v, (nuint)c), eps).StoreUnsafe(ref v, (nuint)c);
            }
        }

        for (; c < values.Length; c++)
        {
            values[c] = 1.0 / Math.Sqrt(values[c] + epsilon);
        }
    }
}
