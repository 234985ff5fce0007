// Driver for gearman-java 0.6 (Maven Central org.gearman:gearman-java), written the way its
// examples (org.gearman.example.ReverseClient, ReverseFunction, WorkerRunner) use it. The
// command-line contract: conformance/drivers/README.md.
//
// The client always asks for OPTION_REQ exceptions: GearmanClientImpl.addJobServer(conn) does
// so on connect (setForwardExceptions), which is the library's default, so --exceptions needs
// nothing more. GearmanWorkerImpl.work() never returns by itself and stop() drops packets not
// yet written (GearmanJobServerSession.closeSession clears packetsToWrite), so the --count-th
// answer is given a moment to go out before the driver stops the worker (see worker()).
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import org.gearman.client.GearmanClient;
import org.gearman.client.GearmanClientImpl;
import org.gearman.client.GearmanJob;
import org.gearman.client.GearmanJobImpl;
import org.gearman.client.GearmanJobResult;
import org.gearman.client.GearmanJobResultImpl;
import org.gearman.common.GearmanNIOJobServerConnection;
import org.gearman.common.GearmanPacket;
import org.gearman.worker.AbstractGearmanFunction;
import org.gearman.worker.GearmanFunction;
import org.gearman.worker.GearmanFunctionFactory;
import org.gearman.worker.GearmanWorker;
import org.gearman.worker.GearmanWorkerImpl;

public final class GearmanJavaDriver {
    private static final AtomicInteger ANSWERED = new AtomicInteger();
    private static final CountDownLatch ENOUGH = new CountDownLatch(1);
    private static int count = -1;

    public static void main(String[] argv) {
        Map<String, String> o = new HashMap<>();
        if (argv.length == 0 || !(argv[0].equals("client") || argv[0].equals("worker"))) {
            usage("client|worker --host H --port P --function F [options]");
        }
        for (int i = 1; i < argv.length; i++) {
            String name = argv[i];
            if (!name.startsWith("--")) usage("unexpected argument " + name);
            String key = name.substring(2);
            if (key.equals("background") || key.equals("exceptions")) {
                o.put(key, "yes");
            } else if (i + 1 < argv.length) {
                o.put(key, argv[++i]);
            } else {
                usage(name + " needs a value");
            }
        }
        if (!o.containsKey("host") || !o.containsKey("port") || !o.containsKey("function")) {
            usage("--host, --port and --function are required");
        }
        if (o.containsKey("tls-ca")) exit(5, "unsupported: TLS (gearman-java has no TLS)");
        int code;
        try {
            code = argv[0].equals("client") ? client(o) : worker(o);
        } catch (NumberFormatException e) {
            usage("not a number: " + e.getMessage());
            return;
        }
        exit(code, null);
    }

    static int client(Map<String, String> o) {
        GearmanJob.JobPriority priority = switch (o.getOrDefault("priority", "normal")) {
            case "high" -> GearmanJob.JobPriority.HIGH;
            case "low" -> GearmanJob.JobPriority.LOW;
            case "normal" -> GearmanJob.JobPriority.NORMAL;
            default -> { usage("--priority is high, normal or low"); yield null; }
        };
        double timeout = Double.parseDouble(o.getOrDefault("timeout", "10"));
        GearmanClient client = new GearmanClientImpl();
        if (!client.addJobServer(new GearmanNIOJobServerConnection(o.get("host"), Integer.parseInt(o.get("port"))))) {
            System.err.println("connection error: cannot add the job server (connection or OPTION_REQ exceptions failed)");
            return 2;
        }
        byte[] data = o.getOrDefault("data", "").getBytes(StandardCharsets.UTF_8);
        String unique = o.get("unique");
        boolean background = o.containsKey("background");
        GearmanJob job = background
                ? GearmanJobImpl.createBackgroundJob(o.get("function"), data, priority, unique)
                : GearmanJobImpl.createJob(o.get("function"), data, priority, unique);
        job.registerEventListener(GearmanJavaDriver::update);
        try {
            Future<GearmanJobResult> submitted = client.submit(job);
            GearmanJobResult result = submitted.get((long) (timeout * 1000), TimeUnit.MILLISECONDS);
            if (background) {
                System.out.println(new String(job.getHandle(), StandardCharsets.UTF_8));
                return 0;
            }
            if (result.jobSucceeded()) {
                System.out.write(result.getResults(), 0, result.getResults().length);
                System.out.flush();
                return 0;
            }
            if (result.getExceptions().length > 0) {
                System.err.println("exception: " + new String(result.getExceptions(), StandardCharsets.UTF_8));
                return 4;
            }
            return 3;
        } catch (TimeoutException e) {
            System.err.println("timed out after " + o.getOrDefault("timeout", "10") + "s");
            return 6;
        } catch (ExecutionException | InterruptedException | RuntimeException e) {
            System.err.println("connection error: " + e);
            return 2;
        } finally {
            client.shutdownNow();
        }
    }

    /** WORK_DATA, WORK_WARNING and WORK_STATUS as the job's listener sees them. */
    static void update(GearmanPacket packet) {
        byte[] data = packet.getDataComponentValue(GearmanPacket.DataComponentName.DATA);
        switch (packet.getPacketType()) {
            case WORK_DATA -> System.err.println("data: " + new String(data, StandardCharsets.UTF_8));
            case WORK_WARNING -> System.err.println("warning: " + new String(data, StandardCharsets.UTF_8));
            case WORK_STATUS -> System.err.println("status: "
                    + new String(packet.getDataComponentValue(GearmanPacket.DataComponentName.NUMERATOR), StandardCharsets.UTF_8) + "/"
                    + new String(packet.getDataComponentValue(GearmanPacket.DataComponentName.DENOMINATOR), StandardCharsets.UTF_8));
            default -> { }
        }
    }

    /** The contract's job: "fail" fails, "status" streams then says "done", else the data reversed. */
    public static final class ContractFunction extends AbstractGearmanFunction {
        ContractFunction(String name) {
            super(name);
        }

        @Override
        public GearmanJobResult executeFunction() {
            byte[] in = (byte[]) this.data;
            String text = new String(in, StandardCharsets.ISO_8859_1);
            GearmanJobResult result;
            if (text.equals("fail")) {
                result = new GearmanJobResultImpl(jobHandle, false, new byte[0], new byte[0], new byte[0], 0, 0);
            } else if (text.equals("status")) {
                sendStatus(1, 2);
                sendData("partial".getBytes(StandardCharsets.US_ASCII));
                result = new GearmanJobResultImpl(jobHandle, true, "done".getBytes(StandardCharsets.US_ASCII),
                        new byte[0], new byte[0], 0, 0);
            } else {
                byte[] out = new byte[in.length];
                for (int i = 0; i < in.length; i++) out[i] = in[in.length - 1 - i];
                result = new GearmanJobResultImpl(jobHandle, true, out, new byte[0], new byte[0], 0, 0);
            }
            if (count > 0 && ANSWERED.incrementAndGet() >= count) ENOUGH.countDown();
            return result;
        }
    }

    static int worker(Map<String, String> o) {
        double timeout = Double.parseDouble(o.getOrDefault("timeout", "60"));
        count = o.containsKey("count") ? Integer.parseInt(o.get("count")) : -1;
        String function = o.get("function");
        GearmanWorker worker = new GearmanWorkerImpl();
        if (!worker.addServer(new GearmanNIOJobServerConnection(o.get("host"), Integer.parseInt(o.get("port"))))) {
            System.err.println("connection error: cannot add the job server");
            return 2;
        }
        worker.registerFunctionFactory(new GearmanFunctionFactory() {
            public String getFunctionName() {
                return function;
            }

            public GearmanFunction getFunction() {
                return new ContractFunction(function);
            }
        });
        Thread loop = new Thread(worker::work, "gearman-java worker");
        loop.setDaemon(true);
        loop.start();
        try {
            if (!ENOUGH.await((long) (timeout * 1000), TimeUnit.MILLISECONDS)) {
                System.err.println("timed out after " + o.getOrDefault("timeout", "60") + "s (" + ANSWERED.get() + " jobs done)");
                return 6;
            }
            // The answer is queued when executeFunction returns and written on the work loop's next
            // turn (it selects every 1 ms); stop() would drop it, so give that turn a moment.
            Thread.sleep(100);
        } catch (InterruptedException e) {
            return 1;
        }
        worker.stop();
        return 0;
    }

    static void usage(String message) {
        exit(1, "gearman_java_driver: " + message);
    }

    static void exit(int code, String message) {
        if (message != null) System.err.println(message);
        System.out.flush();
        Runtime.getRuntime().halt(code);
    }
}
