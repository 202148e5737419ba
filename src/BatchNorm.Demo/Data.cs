using System;
using System.IO;
using System.IO.Compression;

namespace BatchNorm.Demo;

/// <summary>A labelled data set: [Count, Features] row-major features and one label per row.</summary>
public sealed record DataSet(float[] Features, int[] Labels, int FeatureCount, int Classes)
{
    public int Count => Labels.Length;

    /// <summary>Rows <paramref name="order"/>[start..start+count) gathered into a batch.</summary>
    public (float[] X, int[] Y) Batch(int[] order, int start, int count)
    {
        ArgumentNullException.ThrowIfNull(order);
        var x = new float[count * FeatureCount];
        var y = new int[count];
        for (int i = 0; i < count; i++)
        {
            int row = order[start + i];
            Features.AsSpan(row * FeatureCount, FeatureCount).CopyTo(x.AsSpan(i * FeatureCount));
            y[i] = Labels[row];
        }

        return (x, y);
    }
}

/// <summary>Data sources for the demo.</summary>
public static class Data
{
    /// <summary>
    /// A deterministic 4-class problem: a 4-dimensional latent point (two noisy concentric rings, split by a side) is mixed
    /// by a fixed random matrix into 16 features, and every feature gets its own scale (1e-2 to 1e3) and offset (up to
    /// ten times its scale). Every feature carries the signal, but at wildly different magnitudes: the badly scaled
    /// activations BatchNorm was made for.
    /// </summary>
    public static (DataSet Train, DataSet Test) Synthetic(int trainCount, int testCount, int seed)
    {
        const int Features = 16;
        const int Latent = 4;
        const int Classes = 4;
        var random = new Random(seed);
        var scales = new double[Features];
        var offsets = new double[Features];
        var mixing = new double[Features, Latent];
        for (int j = 0; j < Features; j++)
        {
            scales[j] = Math.Pow(10, -2 + (5.0 * random.NextDouble()));
            offsets[j] = scales[j] * 10 * ((2 * random.NextDouble()) - 1);
            for (int k = 0; k < Latent; k++)
            {
                mixing[j, k] = Normal(random);
            }
        }

        DataSet Make(int count)
        {
            var x = new float[count * Features];
            var y = new int[count];
            var u = new double[Latent];
            for (int i = 0; i < count; i++)
            {
                int label = random.Next(Classes);
                double angle = 2 * Math.PI * random.NextDouble();
                double radius = (label / 2 == 0 ? 1.0 : 2.0) + (0.2 * Normal(random));
                u[0] = radius * Math.Cos(angle);
                u[1] = radius * Math.Sin(angle);
                u[2] = (label % 2 == 0 ? 1.0 : -1.0) + (0.4 * Normal(random));
                u[3] = Normal(random);
                for (int j = 0; j < Features; j++)
                {
                    double v = 0.1 * Normal(random);
                    for (int k = 0; k < Latent; k++)
                    {
                        v += mixing[j, k] * u[k];
                    }

                    x[(i * Features) + j] = (float)((v * scales[j]) + offsets[j]);
                }

                y[i] = label;
            }

            return new DataSet(x, y, Features, Classes);
        }

        return (Make(trainCount), Make(testCount));
    }

    /// <summary>One standard normal draw (Box-Muller).</summary>
    public static double Normal(Random random)
    {
        ArgumentNullException.ThrowIfNull(random);
        return Math.Sqrt(-2.0 * Math.Log(1.0 - random.NextDouble())) * Math.Cos(2.0 * Math.PI * random.NextDouble());
    }

    /// <summary>
    /// Reads an MNIST/KMNIST/Fashion-MNIST IDX pair: images (magic 0x00000803: count, rows, cols, then unsigned bytes,
    /// scaled to [0, 1]) and labels (magic 0x00000801: count, then bytes). Files ending in .gz are decompressed.
    /// </summary>
    /// <exception cref="InvalidDataException">A magic number, size or label is wrong, or the counts differ.</exception>
    public static DataSet ReadIdx(string imagesPath, string labelsPath)
    {
        byte[] images = ReadAll(imagesPath);
        byte[] labels = ReadAll(labelsPath);
        if (images.Length < 16 || BigEndian(images, 0) != 0x00000803)
        {
            throw new InvalidDataException($"{imagesPath}: not an IDX image file (expected magic 0x00000803).");
        }

        if (labels.Length < 8 || BigEndian(labels, 0) != 0x00000801)
        {
            throw new InvalidDataException($"{labelsPath}: not an IDX label file (expected magic 0x00000801).");
        }

        int count = BigEndian(images, 4);
        int pixels = checked(BigEndian(images, 8) * BigEndian(images, 12));
        if (count < 0 || pixels <= 0 || images.Length != 16 + ((long)count * pixels))
        {
            throw new InvalidDataException($"{imagesPath}: expected {count} images of {pixels} bytes after the 16-byte header, got {images.Length - 16} bytes.");
        }

        if (BigEndian(labels, 4) != count || labels.Length != 8 + count)
        {
            throw new InvalidDataException($"{labelsPath}: expected {count} labels to match the images, got a header of {BigEndian(labels, 4)} and {labels.Length - 8} bytes.");
        }

        var x = new float[count * pixels];
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = images[16 + i] / 255f;
        }

        var y = new int[count];
        int classes = 0;
        for (int i = 0; i < count; i++)
        {
            y[i] = labels[8 + i];
            if (y[i] > 9)
            {
                throw new InvalidDataException($"{labelsPath}: label {y[i]} at {i} is not a digit class 0-9.");
            }

            classes = Math.Max(classes, y[i] + 1);
        }

        return new DataSet(x, y, pixels, Math.Max(classes, 10));
    }

    private static byte[] ReadAll(string path)
    {
        if (!path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase))
        {
            return File.ReadAllBytes(path);
        }

        using var file = File.OpenRead(path);
        using var gzip = new GZipStream(file, CompressionMode.Decompress);
        using var memory = new MemoryStream();
        gzip.CopyTo(memory);
        return memory.ToArray();
    }

    private static int BigEndian(byte[] data, int offset) =>
        (data[offset] << 24) | (data[offset + 1] << 16) | (data[offset + 2] << 8) | data[offset + 3];
}
