using System;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

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
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<double> eps = Vector256.Create(epsilon);
            for (; c <= values.Length - Vector256<double>.Count; c += Vector256<double>.Count)
            {
                Vector256<double> x = Vector256.LoadUnsafe(ref v, (nuint)c);
                (Vector256<double>.One / Vector256.Sqrt(x + eps)).StoreUnsafe(ref v, (nuint)c);
            }
        }
        else if (Vector128.IsHardwareAccelerated)
        {
            Vector128<double> eps = Vector128.Create(epsilon);
            for (; c <= values.Length - Vector128<double>.Count; c += Vector128<double>.Count)
            {
                Vector128<double> x = Vector128.LoadUnsafe(ref v, (nuint)c);
                (Vector128<double>.One / Vector128.Sqrt(x + eps)).StoreUnsafe(ref v, (nuint)c);
            }
        }

        for (; c < values.Length; c++)
        {
            values[c] = 1.0 / Math.Sqrt(values[c] + epsilon);
        }
    }
}
