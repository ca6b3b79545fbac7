package dev.gradwalk.neo4j;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.neo4j.configuration.GraphDatabaseInternalSettings;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.connectors.HttpsConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.GraphDatabaseService;
import org.neo4j.graphdb.QueryExecutionException;
import org.neo4j.io.ByteUnit;

import inet.ipaddr.IPAddressString;

/**
 * Runs an embedded Neo4j DBMS that serves Bolt on one loopback port with authentication on.
 *
 * <p>Usage: {@code Launcher HOME HOST PORT PROCEDURES}. The password of the {@code neo4j} user is read from
 * the environment variable {@code GRADWALK_NEO4J_PASSWORD} (never from the command line, which
 * other users can read) and set on every start, so a changed setting takes effect. Prints
 * {@code GRADWALK-NEO4J-READY} once Bolt accepts connections and shuts down cleanly on SIGTERM.
 * Page cache, transaction timeout and transaction-log retention come from
 * {@code GRADWALK_NEO4J_PAGECACHE_MB}, {@code _TX_TIMEOUT_S} and {@code _TX_LOG_RETENTION}.
 *
 * <p>Defence in depth behind the API's own checks, so a query that slips past them still cannot
 * reach outside the graph: {@code LOAD CSV} reads no file (file URLs off, no import folder) and
 * fetches no URL (every address blocked); only the comma-separated {@code PROCEDURES} are loaded
 * (an empty list loads none; Neo4j 5 applies it to plugin procedures, its built-in ones stay);
 * every transaction ends after the server-side timeout. Bolt keep-alive every 10 s, and clients
 * told to give up after two missed ones: a connection Neo4j leaves hanging (it does after a stack
 * overflow writing a deeply nested value) fails in 20 s instead of two minutes.
 */
public final class Launcher {
    private Launcher() {}

    public static void main(String[] args) throws InterruptedException {
        if (args.length != 4) {
            System.err.println("usage: Launcher HOME HOST PORT PROCEDURES");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        String host = args[1];
        int port = Integer.parseInt(args[2]);
        List<String> procedures = Arrays.stream(args[3].split(",")).map(String::strip).filter(p -> !p.isEmpty()).toList();
        String password = System.getenv("GRADWALK_NEO4J_PASSWORD");
        if (password == null || password.length() < 8) {
            System.err.println("GRADWALK_NEO4J_PASSWORD must be set to at least 8 characters");
            System.exit(2);
        }
        long pageCacheMb = Long.parseLong(System.getenv().getOrDefault("GRADWALK_NEO4J_PAGECACHE_MB", "512"));
        long txTimeoutS = Long.parseLong(System.getenv().getOrDefault("GRADWALK_NEO4J_TX_TIMEOUT_S", "0"));
        String txLogRetention = System.getenv().getOrDefault("GRADWALK_NEO4J_TX_LOG_RETENTION", "1G size");

        DatabaseManagementService dbms = new DatabaseManagementServiceBuilder(home)
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, new SocketAddress(host, port))
                .setConfig(BoltConnector.advertised_address, new SocketAddress(host, port))
                .setConfig(HttpConnector.enabled, false)
                .setConfig(HttpsConnector.enabled, false)
                .setConfig(GraphDatabaseSettings.auth_enabled, true)
                .setConfig(GraphDatabaseSettings.pagecache_memory, ByteUnit.mebiBytes(pageCacheMb))
                .setConfig(GraphDatabaseSettings.transaction_timeout, Duration.ofSeconds(txTimeoutS))
                .setConfig(GraphDatabaseSettings.keep_logical_logs, txLogRetention)
                .setConfig(GraphDatabaseSettings.allow_file_urls, false)
                .setConfig(GraphDatabaseInternalSettings.cypher_ip_blocklist,
                        List.of(new IPAddressString("0.0.0.0/0"), new IPAddressString("::/0")))
                .setConfig(GraphDatabaseSettings.procedure_allowlist, procedures)
                .setConfig(BoltConnector.connection_keep_alive, Duration.ofSeconds(10))
                .setConfig(BoltConnector.connection_keep_alive_probes, 2)
                .build();
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            dbms.shutdown();
            stopped.countDown();
        }, "gradwalk-neo4j-shutdown"));

        try {
            setPassword(dbms.database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME), password);
            dbms.database(GraphDatabaseSettings.DEFAULT_DATABASE_NAME).executeTransactionally("RETURN 1");
        } catch (RuntimeException e) {
            e.printStackTrace();
            System.exit(1); // the shutdown hook stops the DBMS
        }

        System.out.println("GRADWALK-NEO4J-READY bolt://" + host + ":" + port);
        System.out.flush();
        stopped.await();
    }

    /** Neo4j refuses to "change" a password to the one it already has; that case is fine. */
    private static void setPassword(GraphDatabaseService system, String password) {
        try {
            system.executeTransactionally(
                    "ALTER USER neo4j SET PASSWORD $password CHANGE NOT REQUIRED", Map.of("password", password));
        } catch (QueryExecutionException e) {
            if (!e.getMessage().contains("Old password and new password cannot be the same")) {
                throw e;
            }
        }
    }
}
