using System;
using System.Numerics.Tensors;
using BatchNorm.Tensors;

namespace BatchNorm.Demo;

/// <summary>A fully connected layer y = x W + b, trained with plain SGD. Deliberately small: the library is BatchNorm.</summary>
public sealed class Dense
{
    private readonly float[] _weights; // [inputs, outputs], row-major
    private readonly float[] _bias;
    private readonly float[] _weightGradient;
    private readonly float[] _biasGradient;
    private float[] _input = [];

    /// <summary>He-normal weights (std sqrt(2 / inputs)), zero bias.</summary>
    public Dense(int inputs, int outputs, Random random)
    {
        ArgumentNullException.ThrowIfNull(random);
        Inputs = inputs;
        Outputs = outputs;
        _weights = new float[inputs * outputs];
        _bias = new float[outputs];
        _weightGradient = new float[_weights.Length];
        _biasGradient = new float[outputs];
        double std = Math.Sqrt(2.0 / inputs);
        for (int i = 0; i < _weights.Length; i++)
        {
            _weights[i] = (float)(std * Data.Normal(random));
        }
    }

    public int Inputs { get; }

    public int Outputs { get; }

    /// <summary>y[r, :] = x[r, :] W + b for a [rows, inputs] batch; keeps x for <see cref="Backward"/>.</summary>
    public float[] Forward(float[] x, int rows)
    {
        _input = x;
        var y = new float[rows * Outputs];
        for (int r = 0; r < rows; r++)
        {
            Span<float> yr = y.AsSpan(r * Outputs, Outputs);
            _bias.CopyTo(yr);
            for (int i = 0; i < Inputs; i++)
            {
                float xi = x[(r * Inputs) + i];
                if (xi != 0)
                {
                    TensorPrimitives.MultiplyAdd(_weights.AsSpan(i * Outputs, Outputs), xi, yr, yr);
                }
            }
        }

        return y;
    }

    /// <summary>Accumulates dW = x^T dy and db = sum(dy); returns dx = dy W^T.</summary>
    public float[] Backward(float[] dy, int rows)
    {
        Array.Clear(_weightGradient);
        Array.Clear(_biasGradient);
        var dx = new float[rows * Inputs];
        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<float> gr = dy.AsSpan(r * Outputs, Outputs);
            TensorPrimitives.Add(_biasGradient, gr, _biasGradient);
            for (int i = 0; i < Inputs; i++)
            {
                Span<float> wg = _weightGradient.AsSpan(i * Outputs, Outputs);
                TensorPrimitives.MultiplyAdd(gr, _input[(r * Inputs) + i], wg, wg);
                dx[(r * Inputs) + i] = TensorPrimitives.Dot(gr, _weights.AsSpan(i * Outputs, Outputs));
            }
        }

        return dx;
    }

    /// <summary>w -= learningRate * gradient.</summary>
    public void Step(float learningRate)
    {
        TensorPrimitives.MultiplyAdd(_weightGradient, -learningRate, _weights, _weights);
        TensorPrimitives.MultiplyAdd(_biasGradient, -learningRate, _bias, _bias);
    }
}

/// <summary>
/// Dense -> [BatchNorm] -> ReLU, twice, then Dense -> softmax cross-entropy. With <c>useBatchNorm</c> false the same
/// network without the two BatchNormalization layers.
/// </summary>
public sealed class Mlp
{
    private readonly Dense[] _dense;
    private readonly BatchNormalization?[] _norms;
    private readonly float[][] _activations = new float[2][];

    public Mlp(int inputs, int hidden, int classes, bool useBatchNorm, int seed)
    {
        var random = new Random(seed);
        _dense = [new Dense(inputs, hidden, random), new Dense(hidden, hidden, random), new Dense(hidden, classes, random)];
        _norms = useBatchNorm ? [new BatchNormalization(momentum: 0.9), new BatchNormalization(momentum: 0.9)] : [null, null];
        Classes = classes;
    }

    public int Classes { get; }

    public bool UsesBatchNorm => _norms[0] is not null;

    /// <summary>Class scores (logits), [rows, classes].</summary>
    public float[] Forward(float[] x, int rows, bool training)
    {
        float[] h = x;
        for (int l = 0; l < 2; l++)
        {
            h = _dense[l].Forward(h, rows);
            if (_norms[l] is { } bn)
            {
                var z = new NdArray<float>(h, new NdShape(rows, _dense[l].Outputs));
                h = bn.Call(z, training).GetUnderlyingArray();
            }

            for (int i = 0; i < h.Length; i++)
            {
                h[i] = Math.Max(h[i], 0f);
            }

            _activations[l] = h;
        }

        return _dense[2].Forward(h, rows);
    }

    /// <summary>One SGD step on a batch; returns the mean cross-entropy before the step.</summary>
    public double TrainStep(float[] x, int[] labels, int rows, float learningRate)
    {
        float[] logits = Forward(x, rows, training: true);
        var (loss, dLogits) = SoftmaxCrossEntropy(logits, labels, rows, Classes);
        float[] g = _dense[2].Backward(dLogits, rows);
        for (int l = 1; l >= 0; l--)
        {
            float[] a = _activations[l];
            for (int i = 0; i < g.Length; i++)
            {
                g[i] = a[i] > 0 ? g[i] : 0f;
            }

            if (_norms[l] is { } bn)
            {
                BatchNormalizationGradients<float> grads = bn.Backward(new NdArray<float>(g, new NdShape(rows, _dense[l].Outputs)));
                TensorPrimitives.MultiplyAdd(grads.GammaGradient!.ReadOnlySpan, -learningRate, bn.Gamma!.Span, bn.Gamma.Span);
                TensorPrimitives.MultiplyAdd(grads.BetaGradient!.ReadOnlySpan, -learningRate, bn.Beta!.Span, bn.Beta.Span);
                bn.ApplyConstraints();
                g = grads.InputGradient.GetUnderlyingArray();
            }

            g = _dense[l].Backward(g, rows);
        }

        foreach (Dense d in _dense)
        {
            d.Step(learningRate);
        }

        return loss;
    }

    /// <summary>Mean loss and accuracy in inference mode.</summary>
    public (double Loss, double Accuracy) Evaluate(float[] x, int[] labels, int features)
    {
        int rows = labels.Length;
        double loss = 0;
        int correct = 0;
        const int Chunk = 1024;
        for (int start = 0; start < rows; start += Chunk)
        {
            int n = Math.Min(Chunk, rows - start);
            float[] logits = Forward(x.AsSpan(start * features, n * features).ToArray(), n, training: false);
            int[] chunkLabels = labels.AsSpan(start, n).ToArray();
            loss += SoftmaxCrossEntropy(logits, chunkLabels, n, Classes).Loss * n;
            for (int r = 0; r < n; r++)
            {
                if (TensorPrimitives.IndexOfMax(logits.AsSpan(r * Classes, Classes)) == chunkLabels[r])
                {
                    correct++;
                }
            }
        }

        return (loss / rows, (double)correct / rows);
    }

    /// <summary>Mean softmax cross-entropy and its gradient with respect to the logits ((softmax - onehot) / rows).</summary>
    public static (double Loss, float[] Gradient) SoftmaxCrossEntropy(float[] logits, int[] labels, int rows, int classes)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(labels);
        var gradient = new float[logits.Length];
        double loss = 0;
        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<float> z = logits.AsSpan(r * classes, classes);
            Span<float> p = gradient.AsSpan(r * classes, classes);
            float max = TensorPrimitives.Max(z);
            double sum = 0;
            for (int k = 0; k < classes; k++)
            {
                sum += Math.Exp(z[k] - max);
            }

            double logSum = Math.Log(sum) + max;
            loss += logSum - z[labels[r]];
            for (int k = 0; k < classes; k++)
            {
                p[k] = (float)((Math.Exp(z[k] - logSum) - (k == labels[r] ? 1 : 0)) / rows);
            }
        }

        return (loss / rows, gradient);
    }
}
