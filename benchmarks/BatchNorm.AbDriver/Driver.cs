using System;
using System.Numerics;
using BatchNorm.Tensors;

namespace BatchNorm.AbDriver;

/// <summary>
/// Builds the calls an A/B run times, against the library version this assembly was compiled with. Its signature uses
/// only runtime types, so that a harness can load two builds side by side (each in its own load context) and call both
/// on the same arrays.
/// </summary>
public static class Driver
{
    /// <summary>
    /// A call of the layer (one thread unless <paramref name="mode"/> ends in <c>*</c>, which takes every core):
    /// <c>inference</c>, <c>training</c> (the forward) or <c>backward</c> (after a training call), on the channels-last
    /// input <paramref name="x"/> of <paramref name="shape"/> (or channels at axis 1 when <paramref name="axis"/> is 1),
    /// into <paramref name="y"/>, with <paramref name="dy"/> and <paramref name="dx"/> for the backward. The arrays are
    /// float[] or double[], all of the shape's length.
    /// </summary>
    public static Action Make(string mode, Array x, Array y, Array dy, Array dx, int[] shape, int axis)
    {
        ArgumentNullException.ThrowIfNull(mode);
        return x switch
        {
            float[] f => Make(mode, f, (float[])y, (float[])dy, (float[])dx, shape, axis),
            double[] d => Make(mode, d, (double[])y, (double[])dy, (double[])dx, shape, axis),
            _ => throw new ArgumentException("float[] or double[] expected.", nameof(x)),
        };
    }

    private static Action Make<T>(string mode, T[] x, T[] y, T[] dy, T[] dx, int[] shape, int axis)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var layer = new BatchNormalization<T>(axis: axis) { MaxDegreeOfParallelism = mode.EndsWith('*') ? -1 : 1 };
        var nd = new NdShape(shape);
        var input = new NdArray<T>(x, nd);
        var output = new NdArray<T>(y, nd);
        layer.Call(input, output, training: true);
        int channels = shape[axis < 0 ? shape.Length + axis : axis];
        var gammaGradient = new T[channels];
        var betaGradient = new T[channels];
        return mode.TrimEnd('*') switch
        {
            "inference" => () => layer.Call(input, output, training: false),
            "training" => () => layer.Call(input, output, training: true),
            "backward" => () => layer.Backward(dy, dx, gammaGradient, betaGradient),
            _ => throw new ArgumentException("inference, training or backward expected.", nameof(mode)),
        };
    }
}
