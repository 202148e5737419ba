using System;

namespace BatchNorm.Benchmarks;

/// <summary>
/// Batch normalization in float64, written out plainly, for the alternating harness's check of the layer and oneDNN
/// (<c>--peers</c>): the Keras formulas, two passes per statistic.
/// </summary>
internal static class Reference
{
    /// <summary>
    /// y for <c>inference</c> (from the given moving statistics) and <c>training</c> (from the batch's mean and biased
    /// variance), dx for <c>backward</c> (from the batch's statistics):
    /// <c>dx = gamma / sqrt(var + eps) * (dy - mean(dy) - xhat * mean(dy * xhat))</c>.
    /// </summary>
    public static double[] Output(
        ShapeCase shape, string mode, double epsilon, double[] x, double[] dy, double[] gamma, double[] beta, double[] movingMean, double[] movingVariance)
    {
        int rank = shape.Shape.Rank;
        int axis = shape.Axis < 0 ? shape.Axis + rank : shape.Axis;
        int channels = shape.Shape[axis];
        int inner = 1;
        for (int d = axis + 1; d < rank; d++)
        {
            inner *= shape.Shape[d];
        }

        int Channel(int i) => i / inner % channels;

        double[] mean = new double[channels], variance = new double[channels];
        if (mode == "inference")
        {
            movingMean.CopyTo(mean, 0);
            movingVariance.CopyTo(variance, 0);
        }
        else
        {
            double count = (double)x.Length / channels;
            for (int i = 0; i < x.Length; i++)
            {
                mean[Channel(i)] += x[i];
            }

            for (int c = 0; c < channels; c++)
            {
                mean[c] /= count;
            }

            for (int i = 0; i < x.Length; i++)
            {
                double d = x[i] - mean[Channel(i)];
                variance[Channel(i)] += d * d;
            }

            for (int c = 0; c < channels; c++)
            {
                variance[c] /= count;
            }
        }

        var output = new double[x.Length];
        if (mode != "backward")
        {
            for (int i = 0; i < x.Length; i++)
            {
                int c = Channel(i);
                output[i] = ((x[i] - mean[c]) / Math.Sqrt(variance[c] + epsilon) * gamma[c]) + beta[c];
            }

            return output;
        }

        double[] meanDy = new double[channels], meanDyXhat = new double[channels];
        double rows = (double)x.Length / channels;
        for (int i = 0; i < x.Length; i++)
        {
            int c = Channel(i);
            meanDy[c] += dy[i] / rows;
            meanDyXhat[c] += dy[i] * (x[i] - mean[c]) / Math.Sqrt(variance[c] + epsilon) / rows;
        }

        for (int i = 0; i < x.Length; i++)
        {
            int c = Channel(i);
            double invStd = 1 / Math.Sqrt(variance[c] + epsilon);
            double xhat = (x[i] - mean[c]) * invStd;
            output[i] = gamma[c] * invStd * (dy[i] - meanDy[c] - (xhat * meanDyXhat[c]));
        }

        return output;
    }
}
